package client

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/droverhq/drover/structs"
)

// fingerprint builds the node: resources, attributes and drivers.
func (c *Client) fingerprint() (*structs.Node, error) {
	cores := runtime.NumCPU()
	mhz, err := cpuMHz()
	if err != nil {
		c.logger.Warn("could not read the CPU frequency; assuming 1000 MHz per core", "error", err)
		mhz = 1000
	}
	totalCPU := int64(float64(cores) * mhz)
	if c.config.CPUTotalMHz > 0 {
		totalCPU = c.config.CPUTotalMHz
	}
	memMB, err := memoryMB()
	if err != nil {
		return nil, fmt.Errorf("fingerprint memory: %w", err)
	}
	if c.config.MemoryTotalMB > 0 {
		memMB = c.config.MemoryTotalMB
	}
	hostname, _ := os.Hostname()
	name := c.config.NodeName
	if name == "" {
		name = hostname
	}
	attrs := map[string]string{
		"kernel.name":               runtime.GOOS,
		"kernel.version":            kernelVersion(),
		"os.name":                   osRelease("ID"),
		"os.version":                osRelease("VERSION_ID"),
		"cpu.arch":                  runtime.GOARCH,
		"cpu.numcores":              strconv.Itoa(cores),
		"cpu.frequency":             strconv.Itoa(int(mhz)),
		"cpu.totalcompute":          strconv.FormatInt(totalCPU, 10),
		"memory.totalbytes":         strconv.FormatInt(memMB*1024*1024, 10),
		"unique.hostname":           hostname,
		"unique.network.ip-address": c.config.NetworkIP,
	}
	node := &structs.Node{
		ID:         c.nodeID,
		SecretID:   c.secretID,
		Name:       name,
		Datacenter: c.config.Datacenter,
		NodeClass:  c.config.NodeClass,
		HTTPAddr:   c.config.HTTPAddr,
		Attributes: attrs,
		Meta:       c.config.Meta,
		NodeResources: &structs.NodeResources{
			Cpu:            structs.NodeCpuResources{CpuShares: totalCPU, TotalCpuCores: cores},
			Memory:         structs.NodeMemoryResources{MemoryMB: memMB},
			MinDynamicPort: c.config.MinDynamicPort,
			MaxDynamicPort: c.config.MaxDynamicPort,
		},
		ReservedResources: &structs.NodeReservedResources{
			Cpu:           structs.NodeCpuResources{CpuShares: c.config.ReservedCPU},
			Memory:        structs.NodeMemoryResources{MemoryMB: c.config.ReservedMemoryMB},
			ReservedPorts: c.config.ReservedPorts,
		},
		Drivers: make(map[string]*structs.DriverInfo),
		Status:  structs.NodeStatusReady,
	}
	c.fingerprintDrivers(node)
	return node, nil
}

// fingerprintDrivers asks every driver for its health. A driver whose
// health is what node already says keeps its UpdateTime: the time is
// when the health last changed.
func (c *Client) fingerprintDrivers(node *structs.Node) {
	for name, d := range c.config.Drivers {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		info := d.Fingerprint(ctx)
		cancel()
		if old := node.Drivers[name]; old != nil && sameDriverHealth(old, info) {
			info.UpdateTime = old.UpdateTime
		}
		node.Drivers[name] = info
		for k, v := range info.Attributes {
			node.Attributes[k] = v
		}
	}
}

// cpuMHz reads the per-core clock from /proc/cpuinfo.
func cpuMHz() (float64, error) {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(key) == "cpu MHz" {
			return strconv.ParseFloat(strings.TrimSpace(val), 64)
		}
	}
	return 0, fmt.Errorf("no \"cpu MHz\" line in /proc/cpuinfo")
}

// memoryMB reads MemTotal from /proc/meminfo.
func memoryMB() (int64, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			kb, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil {
				return 0, err
			}
			return kb / 1024, nil
		}
	}
	return 0, fmt.Errorf("no MemTotal in /proc/meminfo")
}

func kernelVersion() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func osRelease(key string) string {
	b, err := os.ReadFile("/etc/os-release")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && k == key {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}
