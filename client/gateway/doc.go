// Package gateway is the HTTP ingress gateway a client agent runs when
// gateway { enabled = true }: it listens on the agent's address (HTTP,
// and HTTPS when certificates are configured) and sends each request to
// a passing instance of the service whose `route` matches it.
//
// Routing. Update (fed by the same Service.Proxy blocking query as
// client/proxy) builds an immutable routing table and swaps it in
// atomically: requests in flight keep the table they started with. A
// request's host (lower-cased, port stripped) is looked up exactly,
// then as a one-label wildcard ("*.example.com" matches
// "a.example.com", not "a.b.example.com"), then among the routes
// without a host; within each, the longest path prefix that matches at a
// segment boundary wins ("/api" matches "/api" and "/api/x", never
// "/apix"). No route: 404; a route without a passing instance: 503;
// both with a JSON body {"error": "..."}.
//
// Forwarding is net/http/httputil.ReverseProxy over one shared
// http.Transport (HTTP/1.1 to the instances; WebSocket upgrades pass).
// Accept-Encoding and the response's encoding pass as sent; an
// instance's response headers are bounded at 1 MiB. What an instance
// sends is flushed to the client as it comes (headers without a body
// within 1 ms).
// A route's timeout bounds the wait for the response's headers, never a
// streamed body or an upgraded connection. Balancing is least requests
// in flight, ties broken round robin; a route with a canary_weight sends
// that percentage of its requests to the canary instances while both
// canaries and other instances pass. A dial that fails (nothing was
// sent) is tried again on another instance, max(retries, 1) times, for
// any method; a connection closed before any response is tried again
// `retries` times for requests without a body or of an idempotent
// method whose body was not read yet, and at least once for idempotent
// methods without a body (GET, HEAD, ...).
//
// TLS: certificates are named in the configuration; a route's tls {
// cert_name } picks the one served for its host (by SNI), else the first
// configured one. Routes with https_only answer plain HTTP with a 308
// to HTTPS.
//
// Counters are in Status (GET /v1/client/gateway on the agent) and in
// Registry (drover_gateway_*, served at /v1/metrics); an optional access
// log gets one JSON line per request.
//
// gateway imports structs, the standard library and
// prometheus/client_golang only. It must not import client, server or
// agent: the agent calls Update.
package gateway
