// Package index is swarmfs's namespace on etcd.
package index
