// Package daemon wires one swarmfs node: the swarm client, the index
// (an embedded etcd member unless --etcd-endpoints is given), the node
// registration, the FUSE mount (--mount), the control API for mountctl
// (unix socket <state-dir>/mountctl.sock, optional TCP with a token), and
// /metrics and /healthz on --metrics-addr.
//
// A node adds objects with --add [PATH=]URL or mountctl add: the URL is
// converted once in the cluster (index.ConvertOnce) and downloaded from
// the nodes holding it. Objects held from an earlier run are resumed at
// start with the records kept in <state-dir>/records.
//
// Shutdown order: the mount first (blocked reads fail with EIO at once),
// then the control API, watchers, registration, swarm client, index and
// the embedded etcd member.
//
// Two nodes on one machine:
//
//	swarmfsd --state-dir /tmp/a --listen 127.0.0.1:7001 --metrics-addr 127.0.0.1:9101 \
//	    --etcd-client-url http://127.0.0.1:2379 --mount /tmp/a/mnt
//	swarmfsd --state-dir /tmp/b --listen 127.0.0.1:7002 --metrics-addr 127.0.0.1:9102 \
//	    --etcd-endpoints http://127.0.0.1:2379 --mount /tmp/b/mnt
//	mountctl --socket /tmp/a/mountctl.sock add http://origin/images/x.img --as images/x.img
//	sha256sum /tmp/b/mnt/images/x.img
package daemon
