// Package mountctl is the control API of a swarmfs node and its command
// line: JSON over HTTP, served by swarmfsd on a unix socket (mode 0660) and
// optionally on TCP behind a bearer token, a Go Client for it, and the
// mountctl CLI (Main) built on that Client. Server and Client share the
// request and response types of types.go, so the CLI sees exactly what the
// daemon sent.
//
// # Routes
//
//	GET    /v1/status              NodeStatus: version, uptime, rates, disk, etcd
//	GET    /v1/nodes               NodeList: live nodes with rack and zone
//	GET    /v1/objects             ObjectList (?prefix=DIR&local=true)
//	POST   /v1/objects             AddRequest → Object (add an origin URL)
//	GET    /v1/objects/{path...}   Object (stat)
//	DELETE /v1/objects/{path...}   DeleteRequest{confirm: path} → DeleteResult
//	POST   /v1/publish             PublishRequest → Object (a file on the node)
//	POST   /v1/warm/{path...}      WarmRequest → Object (download fully now)
//	POST   /v1/evict/{path...}     Object (drop the local copy)
//	POST   /v1/pin/{path...}       Object (keep in RAM)
//	DELETE /v1/pin/{path...}       Object (unpin)
//
// Bodies are JSON objects of at most Config.MaxBodyBytes; unknown fields,
// trailing data and unknown query parameters are rejected. Object paths
// are checked (relative, no empty, "." or ".." segments, no control
// characters) before the daemon sees them; a URL whose path has such
// segments is refused rather than cleaned.
//
// # Errors
//
// The daemon side implements Controller and reports failures the caller
// must tell apart as *Error values; the server maps their Kind to a status
// (400 bad input naming the field, 401 token, 404 unknown path, 409
// conflict, 413 body too large, 501 not built, 502 origin failed with the
// origin's status, 503 etcd unreachable, 504 timeout) and sends
// {"error": {"kind", "message", "field", "origin_status"}}. The Client
// returns the same *Error, and the CLI prints its message.
//
// # Use
//
//	srv, err := mountctl.NewServer(ctl, mountctl.Config{Socket: "/var/lib/swarmfs/mountctl.sock"},
//		mountctl.WithLogger(log), mountctl.WithRegisterer(reg))
//	err = srv.Start()          // or mount srv.Handler() yourself
//	defer srv.Shutdown(ctx)
//
//	c, err := mountctl.NewClient("/var/lib/swarmfs/mountctl.sock")
//	obj, err := c.Add(ctx, mountctl.AddRequest{URL: "http://origin/img.qcow2", Path: "images/img.qcow2"})
//
// Fake (testing.go) is an in-memory Controller for tests of the handlers
// and of code that uses the Client.
package mountctl
