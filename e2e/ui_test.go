package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/droverhq/drover/testutil"
)

// TestUI_BrowserFollowsAJob opens the web UI of a dev agent running a
// real 3-instance job in headless Chromium and uses it as a person
// would, by clicking: the job is in the list, its page shows 3 running
// allocations, an allocation's page shows the task's log line (followed
// through the logs API) and its passing check, the node page's
// eligibility switch writes through the API, services and variables are
// listed; then `drover job stop` turns the open job page dead within 2 s
// without a reload. The browser's console must stay free of errors
// (console.error, uncaught exceptions, failed loads and CSP violations
// in the browser log) throughout. Each page is saved as a PNG under the
// test's temp dir (and, with DROVER_UI_SCREENSHOTS=DIR, copied there:
// docs/ui-*.png come from such a run).
func TestUI_BrowserFollowsAJob(t *testing.T) {
	chromium := chromiumPath(t)
	c := newCluster(t)
	a := c.startDevAgent()

	job := writeFile(t, "web.hcl", serviceJob("web", c.image, "web", "/", 3))
	if r := a.cli("job", "run", job); r.code != 0 {
		t.Fatalf("job run: %s", r)
	}
	testutil.WaitFor(t, 2*time.Minute, func() (bool, error) {
		n := 0
		for _, al := range liveAllocs(t, a, "web") {
			if al.ClientStatus == "running" {
				n++
			}
		}
		return n == 3, fmt.Errorf("%d of 3 allocations running", n)
	})
	if r := a.cli("var", "put", "app/config", "greeting=hello"); r.code != 0 {
		t.Fatalf("var put: %s", r)
	}

	b := startBrowser(t, chromium)
	shots := t.TempDir()
	shot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(shots, "ui-"+name+".png"), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { copyScreenshots(t, shots) })

	// The agent's root sends the browser to the UI: the cluster, with
	// the leader and the client node.
	b.do(chromedp.Navigate(a.url() + "/"))
	b.waitJS("the overview", `location.pathname === "/ui/" && document.querySelector("main h1").textContent === "Cluster"
		&& document.querySelector("main .badge[data-status=leader]") !== null
		&& document.querySelectorAll("main tr a[href^='/ui/nodes/']").length === 1`)
	shot("overview")
	// Keyboard: the first Tab reaches the skip link.
	b.do(chromedp.KeyEvent("\t"))
	b.waitJS("focus on the skip link after Tab", `document.activeElement.classList.contains("skip")`)

	// Jobs list, reached through the navigation (no reload).
	b.mark()
	b.do(chromedp.Click(chromedp.CSS(`a[data-nav="jobs"]`)))
	b.waitJS("web in the job list", `document.querySelector('tr[data-job="web"][data-status="running"]') !== null`)
	shot("jobs")

	// The job's page: 3 running allocations, counted in the group too.
	b.do(chromedp.Click(chromedp.CSS(`tr[data-job="web"] a`)))
	b.waitJS("3 running allocations on the job page", `location.pathname === "/ui/jobs/web"
		&& document.querySelectorAll('tr[data-alloc][data-status="running"]').length === 3
		&& document.querySelector('tr[data-group="web"] [data-count="running"]').textContent === "3"
		&& document.querySelector("#job-status .badge").textContent === "running"`)
	shot("job")

	// An allocation: its task's log line, followed through the logs
	// API, and its service check passing.
	b.do(chromedp.Click(chromedp.CSS(`tr[data-alloc][data-status="running"] a`)))
	b.waitJS("the allocation page", `location.pathname.startsWith("/ui/allocations/") && document.querySelector("#alloc-status") !== null`)
	allocID := strings.TrimPrefix(b.evalString(`location.pathname`), "/ui/allocations/")
	alloc, _, err := a.api.Allocations().Info(allocID, nil)
	if err != nil {
		t.Fatalf("allocation %s: %v", allocID, err)
	}
	port := alloc.AllocatedResources.Shared.Ports[0].Value
	b.waitJS("the task's log line", fmt.Sprintf(`document.querySelector("#log").textContent.includes(%q)`, fmt.Sprintf("serving on %d", port)))
	b.waitJS("a passing check and the service instance", `document.querySelector('section[aria-labelledby="s-checks"] .badge[data-status="passing"]') !== null
		&& document.querySelector('section[aria-labelledby="s-service-instances"] .badge[data-status="passing"]') !== null`)
	shot("allocation")

	// Nodes, and the eligibility switch on the node's page: the write
	// goes through the API, the page follows.
	b.do(chromedp.Click(chromedp.CSS(`a[data-nav="nodes"]`)))
	b.waitJS("the node list with resource bars", `document.querySelectorAll("tr[data-node] progress").length === 2`)
	shot("nodes")
	b.do(chromedp.Click(chromedp.CSS(`tr[data-node] a`)))
	b.waitJS("the node page", `document.querySelector('button[data-action="eligibility"]') !== null && document.querySelector("#node-status .badge").textContent === "ready"`)
	nodeID := strings.TrimPrefix(b.evalString(`location.pathname`), "/ui/nodes/")
	b.do(chromedp.Click(chromedp.CSS(`button[data-action="eligibility"]`)))
	b.waitJS("the node marked ineligible", `document.querySelector("#node-status .badge").textContent === "ineligible"`)
	if n, _, err := a.api.Nodes().Info(nodeID, nil); err != nil || n.SchedulingEligibility != "ineligible" {
		t.Fatalf("after Mark ineligible the API says %v (%v), want ineligible", n, err)
	}
	shot("node")
	b.do(chromedp.Click(chromedp.CSS(`button[data-action="eligibility"]`)))
	b.waitJS("the node eligible again", `document.querySelector("#node-status .badge").textContent === "ready"`)
	if n, _, err := a.api.Nodes().Info(nodeID, nil); err != nil || n.SchedulingEligibility != "eligible" {
		t.Fatalf("after Mark eligible the API says %v (%v), want eligible", n, err)
	}

	b.do(chromedp.Click(chromedp.CSS(`a[data-nav="services"]`)))
	b.waitJS("the web service", `document.querySelector('tr[data-service="web"]') !== null && document.querySelector('tr[data-service="web"]').textContent.includes("3 / 3")`)
	shot("services")

	b.do(chromedp.Click(chromedp.CSS(`a[data-nav="variables"]`)))
	b.waitJS("the variable's path", `document.querySelector('tr[data-var="app/config"]') !== null`)
	shot("variables")
	b.do(chromedp.Click(chromedp.CSS(`tr[data-var="app/config"] a`)))
	b.waitJS("the variable's items, hidden", `document.querySelector("main table") !== null && document.querySelector("main table").textContent.includes("greeting")
		&& !document.querySelector("main table").textContent.includes("hello")`)
	b.do(chromedp.Click(chromedp.CSS(`button[data-action="reveal"]`)))
	b.waitJS("the variable's value shown", `document.querySelector("main table").textContent.includes("hello")`)

	// A narrow window: the page fits its width (tables scroll inside
	// their own box).
	b.do(chromedp.Click(chromedp.CSS(`a[data-nav="jobs"]`)))
	b.waitJS("the job list again", `document.querySelector('tr[data-job="web"]') !== null`)
	b.do(chromedp.EmulateViewport(390, 800))
	b.waitJS("no sideways scrolling at 390px", `document.documentElement.scrollWidth <= window.innerWidth`)
	shot("jobs-narrow")
	b.do(chromedp.EmulateViewport(1280, 800))

	// Back on the job's page, stop the job from the CLI: the open page
	// turns dead from the event stream, without a reload.
	b.do(chromedp.Click(chromedp.CSS(`tr[data-job="web"] a`)))
	b.waitJS("the running job page", `document.querySelectorAll('tr[data-alloc][data-status="running"]').length === 3
		&& document.querySelector("#job-status .badge").textContent === "running"`)
	if r := a.cli("job", "stop", "web"); r.code != 0 {
		t.Fatalf("job stop: %s", r)
	}
	stopped := time.Now()
	if j, _, err := a.api.Jobs().Info("web", nil); err != nil || j.Status != "dead" {
		t.Fatalf("after job stop the API says the job is %v (%v), want dead", j, err)
	}
	b.waitJSWithin(2*time.Second, "the open job page showing dead", `document.querySelector("#job-status .badge").textContent === "dead"`)
	t.Logf("the job page showed dead %v after job stop returned", time.Since(stopped).Round(time.Millisecond))
	b.waitJSWithin(2*time.Second, "the stopped allocations on the open page", `document.querySelectorAll("tr[data-alloc]").length === 3
		&& document.querySelectorAll('tr[data-alloc][data-status="complete"]').length === 3`)
	b.checkNoReload()
	shot("job-dead")

	// A client-only agent serves the UI too. It has no event stream, so
	// its pages follow with blocking queries, never trying the stream (a
	// refused request would be a console error): the client's own node
	// appears on the open page when it registers.
	host := newHost()
	cl := newAgent(t, "client", host, "", []string{"agent", "-client", "-bind", host, "-node-name", "ui-client", "-join", a.host,
		"-containerd-address", c.ctrd.Address, "-containerd-namespace", c.ns + "-client", "-dns-port", "0", "-log-level", "debug"})
	cl.start()
	testutil.WaitFor(t, 30*time.Second, func() (bool, error) {
		err := cl.api.Agent().Health()
		return err == nil, err
	})
	b.do(chromedp.Navigate(cl.url() + "/ui/nodes"))
	b.waitJS("both nodes on the client agent's UI, followed by blocking queries", `document.querySelector("#live").dataset.state === "polling"
		&& document.querySelectorAll("tr[data-node]").length === 2`)
	shot("client-agent-nodes")

	if errs := b.consoleErrors(); len(errs) > 0 {
		t.Fatalf("the browser console has errors:\n%s", strings.Join(errs, "\n"))
	}
}

// chromiumPath finds Debian's chromium; the test fails (never skips)
// without it, saying how to install it.
func chromiumPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium is not installed; the UI test drives it headless. Install it with scripts/install-deps.sh (make deps), or: apt-get install -y chromium")
	}
	return p
}

// browser is one headless Chromium tab and what its console said.
type browser struct {
	t   *testing.T
	ctx context.Context

	mu       sync.Mutex
	console  []string // "level: text", every message
	errors   []string // the ones that count as errors
	requests []string // the URL of every request the page made
}

func startBrowser(t *testing.T, path string) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.WindowSize(1280, 800),
		chromedp.DisableGPU,
	)
	if os.Geteuid() == 0 {
		// Chromium refuses to run as root with its sandbox on.
		opts = append(opts, chromedp.NoSandbox)
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	b := &browser{t: t, ctx: ctx}
	if err := chromedp.Listen(ctx, b.onEvent); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return b
}

// onEvent runs in the tab's read loop: it only records.
func (b *browser) onEvent(ev any) {
	var level, text string
	switch ev := ev.(type) {
	case *network.EventRequestWillBeSent:
		b.mu.Lock()
		defer b.mu.Unlock()
		b.requests = append(b.requests, ev.Request.URL)
		return
	case *runtime.EventConsoleAPICalled:
		level = string(ev.Type)
		var parts []string
		for _, arg := range ev.Args {
			if len(arg.Value) > 0 {
				parts = append(parts, string(arg.Value))
			} else {
				parts = append(parts, arg.Description)
			}
		}
		text = strings.Join(parts, " ")
	case *runtime.EventExceptionThrown:
		level = "exception"
		text = ev.ExceptionDetails.Text
		if ev.ExceptionDetails.Exception != nil {
			text += " " + ev.ExceptionDetails.Exception.Description
		}
	case *log.EventEntryAdded:
		level = string(ev.Entry.Level)
		text = fmt.Sprintf("[%s] %s %s", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL)
	default:
		return
	}
	line := level + ": " + text
	b.mu.Lock()
	defer b.mu.Unlock()
	b.console = append(b.console, line)
	switch level {
	case "error", "assert", "exception":
		b.errors = append(b.errors, line)
	}
}

func (b *browser) consoleErrors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.errors...)
}

func (b *browser) requestURLs() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.requests...)
}

func (b *browser) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		b.t.Fatalf("browser: %v\n%s", err, b.state())
	}
}

func (b *browser) evalString(expr string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return s
}

// waitJS waits up to a minute for a JavaScript condition on the page.
func (b *browser) waitJS(what, cond string) {
	b.t.Helper()
	b.waitJSWithin(time.Minute, what, cond)
}

func (b *browser) waitJSWithin(limit time.Duration, what, cond string) {
	b.t.Helper()
	// A condition that throws (an element not there yet) is false.
	expr := fmt.Sprintf("(() => { try { return !!(%s); } catch (e) { return false; } })()", cond)
	deadline := time.Now().Add(limit)
	for {
		ok, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](expr))
		if err != nil {
			b.t.Fatalf("waiting for %s: %v", what, err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("no %s within %v\n%s", what, limit, b.state())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// mark sets a value on the page's window; checkNoReload fails if it is
// gone (a reload or a full navigation replaces the window).
func (b *browser) mark() {
	b.t.Helper()
	b.evalString(`String(window.__droverTestMark = true)`)
}

func (b *browser) checkNoReload() {
	b.t.Helper()
	if s := b.evalString(`String(window.__droverTestMark)`); s != "true" {
		b.t.Fatalf("the page was reloaded (window mark %q); the UI must change pages and update in place", s)
	}
}

// state describes the page for a failure message: where it is, what
// its main part says, and the console.
func (b *browser) state() string {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	page, err := chromedp.Run(ctx, chromedp.Evaluate[string](`JSON.stringify({url: location.href, live: document.querySelector("#live") && document.querySelector("#live").textContent, main: document.querySelector("main") ? document.querySelector("main").innerText.slice(0, 3000) : ""})`))
	if err != nil {
		page = fmt.Sprintf("(page unreadable: %v)", err)
	} else {
		var v struct{ URL, Live, Main string }
		if json.Unmarshal([]byte(page), &v) == nil {
			page = fmt.Sprintf("url %s, live %q\n%s", v.URL, v.Live, v.Main)
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return fmt.Sprintf("page: %s\nconsole:\n%s", page, strings.Join(b.console, "\n"))
}

// copyScreenshots copies the test's screenshots to
// $DROVER_UI_SCREENSHOTS, when set (to refresh docs/ui-*.png).
func copyScreenshots(t *testing.T, dir string) {
	dest := os.Getenv("DROVER_UI_SCREENSHOTS")
	files, _ := filepath.Glob(filepath.Join(dir, "*.png"))
	t.Logf("%d screenshots in %s", len(files), dir)
	if dest == "" {
		return
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err == nil {
			err = os.WriteFile(filepath.Join(dest, filepath.Base(f)), b, 0o644)
		}
		if err != nil {
			t.Errorf("copy screenshot: %v", err)
		}
	}
}

// TestUI_ACLDeniedNamesCapability: with ACLs on, the UI shows a 403 as
// a message naming the capability the token lacks; a token typed into
// the token form is used for the API calls (and survives a reload in
// the tab's sessionStorage) but never appears in a URL the page
// requests; a token that may list variables but not read them sees
// the path and not the items.
func TestUI_ACLDeniedNamesCapability(t *testing.T) {
	chromium := chromiumPath(t)
	c := newCluster(t)
	host := newHost()
	a := newAgent(t, "dev-acl", host, "", []string{"agent", "-dev", "-bind", host, "-acl-enabled",
		"-containerd-address", c.ctrd.Address, "-containerd-namespace", c.ns})
	a.start()
	var boot result
	testutil.WaitFor(t, 30*time.Second, func() (bool, error) {
		boot = a.cli("acl", "bootstrap", "-json")
		return boot.code == 0, fmt.Errorf("acl bootstrap: %s", boot)
	})
	var mgmt struct{ SecretID string }
	if err := json.Unmarshal([]byte(boot.stdout), &mgmt); err != nil || mgmt.SecretID == "" {
		t.Fatalf("acl bootstrap printed no token (%v): %s", err, boot.stdout)
	}
	a.useToken(mgmt.SecretID)
	a.waitReady()
	policy := writeFile(t, "reader.hcl", `namespace "default" {
  policy = "read"
  variables {
    path "*" {
      capabilities = ["list"]
    }
  }
}
`)
	if r := a.cliAs(mgmt.SecretID, "acl", "policy", "apply", "reader", policy); r.code != 0 {
		t.Fatalf("acl policy apply: %s", r)
	}
	r := a.cliAs(mgmt.SecretID, "acl", "token", "create", "-name", "ui-reader", "-policy", "reader", "-json")
	var reader struct{ SecretID string }
	if err := json.Unmarshal([]byte(r.stdout), &reader); r.code != 0 || err != nil || reader.SecretID == "" {
		t.Fatalf("acl token create: %s (%v)", r, err)
	}
	if r := a.cliAs(mgmt.SecretID, "var", "put", "app/config", "greeting=hello"); r.code != 0 {
		t.Fatalf("var put: %s", r)
	}

	b := startBrowser(t, chromium)
	// Without a token: denied, and the message says for what.
	b.do(chromedp.Navigate(a.url() + "/ui/jobs/web?namespace=default"))
	b.waitJS("a permission message naming read-job", `document.querySelector("main .msg.denied .cap").textContent === "Missing capability: read-job (namespace default)"`)

	// The reader's token, typed into the form: the job is now merely
	// not there (the API answered the token, not the anonymous policy).
	b.do(chromedp.Click(chromedp.CSS("#token-summary")))
	b.do(chromedp.SendKeys(chromedp.CSS("#token-input"), reader.SecretID))
	b.do(chromedp.Click(chromedp.CSS(`#token-form button[type="submit"]`)))
	b.waitJS("the job not found with the token", `document.querySelector('main .msg.error[data-code="not_found"]') !== null && document.querySelector("main .msg.denied") === null`)
	if v := b.evalString(`document.querySelector("#token-input").value`); v != "" {
		t.Fatalf("the token field still holds %q after use", v)
	}

	// It lasts the tab's session: a reload still sends it.
	b.do(chromedp.Navigate(a.url() + "/ui/variables"))
	b.waitJS("the variable's path for a token that may list", `document.querySelector('tr[data-var="app/config"]') !== null`)
	b.do(chromedp.Click(chromedp.CSS(`tr[data-var="app/config"] a`)))
	b.waitJS("the variable's items refused", `document.querySelector("main .msg.denied .cap") !== null
		&& document.querySelector("main .msg.denied .cap").textContent === 'Missing capability: variables read on path app/config (namespace default)'
		&& !document.querySelector("main").textContent.includes("greeting")`)
	t.Logf("variable read refused with: %s", b.evalString(`document.querySelector("main .msg.denied").innerText`))

	for _, u := range b.requestURLs() {
		if strings.Contains(u, reader.SecretID) || strings.Contains(u, mgmt.SecretID) {
			t.Fatalf("the page requested a URL with the token in it: %s", u)
		}
	}
	// The only errors are the browser's own notes of the refusals the
	// page was meant to get and showed: the 403s, and the 404 of the
	// job that does not exist.
	for _, e := range b.consoleErrors() {
		if !strings.Contains(e, "status of 403") && !(strings.Contains(e, "status of 404") && strings.Contains(e, "/v1/job/web?")) {
			t.Errorf("console error: %s", e)
		}
	}
}
