// Package daemon wires one swarmfs node: the swarm client, the HTTP
// endpoint for /metrics and /healthz, and the objects named on the command
// line. The mount, the index and the control API join it in later steps.
//
// A first converter and a downloader on one machine:
//
//	swarmfsd --data-dir /tmp/a --listen 127.0.0.1:7001 --metrics-addr 127.0.0.1:9101 \
//	    --convert http://origin/img.qcow2 --metainfo-dir /tmp/torrents
//	swarmfsd --data-dir /tmp/b --listen 127.0.0.1:7002 --metrics-addr 127.0.0.1:9102 \
//	    --join /tmp/torrents/<infohash>.torrent --peer 127.0.0.1:7001 --origin http://origin/img.qcow2
package daemon
