package ociimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"sort"
	"time"

	"github.com/containerd/platforms"
	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// BusyboxRef is the reference the busybox image is imported under by
// default. No registry serves it: it exists only where Import put it.
const BusyboxRef = "localhost/drover/busybox:latest"

// BusyboxBinary is the static busybox the image is built from
// (Debian's busybox-static).
const BusyboxBinary = "/bin/busybox"

// busyboxApplets get a /bin symlink to busybox in the image.
var busyboxApplets = []string{
	"cat", "date", "dd", "echo", "env", "false", "grep", "head", "hostname",
	"httpd", "id", "kill", "ls", "mkdir", "nc", "printf", "ps", "rm", "seq",
	"sh", "sleep", "tail", "true", "wc", "wget", "yes",
}

// installHint says how to get the busybox binary the image is built from.
const installHint = "install with apt-get install -y busybox-static"

// imageEpoch is every file's mtime, so that the same busybox binary
// always yields the same layer and image digests.
var imageEpoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// BuildBusybox writes an OCI image layout tarball to path holding
// one image, named ref in index.json: a single layer with the static
// busybox binary, applet symlinks in /bin, /etc/passwd and /etc/group
// for root, and empty /tmp, /www, /proc, /sys, /dev. Its config runs
// /bin/sh with PATH set. The output is byte-for-byte deterministic for a
// given busybox binary and ref.
func BuildBusybox(path string, ref string) error {
	archive, err := busyboxImageArchive(ref)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, archive, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// busyboxImageArchive returns the OCI layout tarball BuildBusybox
// writes.
func busyboxImageArchive(ref string) ([]byte, error) {
	bb, err := os.ReadFile(BusyboxBinary)
	if err != nil {
		return nil, fmt.Errorf("read busybox: %w (%s)", err, installHint)
	}
	layerTar, err := busyboxLayer(bb)
	if err != nil {
		return nil, err
	}
	layerGz, err := gzipBytes(layerTar)
	if err != nil {
		return nil, err
	}

	plat := ocispec.Platform{
		OS:           "linux",
		Architecture: runtime.GOARCH,
		Variant:      platforms.DefaultSpec().Variant,
	}
	created := imageEpoch
	config := ocispec.Image{
		Created:  &created,
		Platform: plat,
		Config: ocispec.ImageConfig{
			Env:        []string{"PATH=/bin:/usr/bin:/sbin:/usr/sbin"},
			Cmd:        []string{"/bin/sh"},
			WorkingDir: "/",
		},
		RootFS: ocispec.RootFS{
			Type:    "layers",
			DiffIDs: []digest.Digest{digest.FromBytes(layerTar)},
		},
		// The text predates this package; changing it would change every
		// digest of the image, which callers may have recorded.
		History: []ocispec.History{{Created: &created, CreatedBy: "drover testutil: static busybox"}},
	}
	configJSON, err := json.Marshal(config)
	if err != nil {
		return nil, err
	}
	manifest := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    descriptor(ocispec.MediaTypeImageConfig, configJSON),
		Layers:    []ocispec.Descriptor{descriptor(ocispec.MediaTypeImageLayerGzip, layerGz)},
	}
	manifestJSON, err := json.Marshal(manifest)
	if err != nil {
		return nil, err
	}
	manifestDesc := descriptor(ocispec.MediaTypeImageManifest, manifestJSON)
	manifestDesc.Platform = &plat
	manifestDesc.Annotations = map[string]string{ocispec.AnnotationRefName: ref}
	index := ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{manifestDesc},
	}
	indexJSON, err := json.Marshal(index)
	if err != nil {
		return nil, err
	}
	layoutJSON, err := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	if err != nil {
		return nil, err
	}

	files := []tarEntry{
		dirEntry("blobs/", 0o755),
		dirEntry("blobs/sha256/", 0o755),
		fileEntry(ocispec.ImageIndexFile, 0o644, indexJSON),
		fileEntry(ocispec.ImageLayoutFile, 0o644, layoutJSON),
	}
	for _, blob := range [][]byte{configJSON, manifestJSON, layerGz} {
		files = append(files, fileEntry("blobs/sha256/"+digest.FromBytes(blob).Encoded(), 0o644, blob))
	}
	return tarBytes(files)
}

// busyboxLayer returns the uncompressed layer tar.
func busyboxLayer(busybox []byte) ([]byte, error) {
	files := []tarEntry{
		dirEntry("bin/", 0o755),
		fileEntry("bin/busybox", 0o755, busybox),
		dirEntry("dev/", 0o755),
		dirEntry("etc/", 0o755),
		fileEntry("etc/group", 0o644, []byte("root:x:0:\nnogroup:x:65534:\n")),
		fileEntry("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")),
		dirEntry("proc/", 0o555),
		dirEntry("root/", 0o700),
		dirEntry("sys/", 0o555),
		dirEntry("tmp/", 0o1777),
		dirEntry("www/", 0o755),
	}
	for _, applet := range busyboxApplets {
		files = append(files, tarEntry{hdr: tar.Header{
			Typeflag: tar.TypeSymlink,
			Name:     "bin/" + applet,
			Linkname: "busybox",
			Mode:     0o777,
		}})
	}
	return tarBytes(files)
}

// tarEntry is one member of a tar stream.
type tarEntry struct {
	hdr  tar.Header
	data []byte
}

func dirEntry(name string, mode int64) tarEntry {
	return tarEntry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode}}
}

func fileEntry(name string, mode int64, data []byte) tarEntry {
	return tarEntry{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data))}, data: data}
}

// tarBytes writes entries sorted by name (so parents precede children)
// with fixed owner and mtime in USTAR format, which carries no
// access/change times.
func tarBytes(entries []tarEntry) ([]byte, error) {
	sort.Slice(entries, func(i, j int) bool { return entries[i].hdr.Name < entries[j].hdr.Name })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := e.hdr
		hdr.ModTime = imageEpoch
		hdr.Uname, hdr.Gname = "root", "root"
		hdr.Format = tar.FormatUSTAR
		if err := tw.WriteHeader(&hdr); err != nil {
			return nil, fmt.Errorf("tar %s: %w", hdr.Name, err)
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, fmt.Errorf("tar %s: %w", hdr.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// gzipBytes compresses b with an empty gzip header (no name, zero mtime).
func gzipBytes(b []byte) ([]byte, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(b); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func descriptor(mediaType string, blob []byte) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(blob), Size: int64(len(blob))}
}
