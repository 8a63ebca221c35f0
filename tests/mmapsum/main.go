// Command mmapsum maps a file read-only and prints the sha256 of the
// mapping: a reader that pages data in through mmap, for the mount tests.
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"syscall"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: mmapsum FILE")
		os.Exit(2)
	}
	f, err := os.Open(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "mmapsum:", err)
		os.Exit(1)
	}
	fi, err := f.Stat()
	if err != nil {
		fmt.Fprintln(os.Stderr, "mmapsum:", err)
		os.Exit(1)
	}
	h := sha256.New()
	if fi.Size() > 0 {
		b, err := syscall.Mmap(int(f.Fd()), 0, int(fi.Size()), syscall.PROT_READ, syscall.MAP_SHARED)
		if err != nil {
			fmt.Fprintln(os.Stderr, "mmapsum: mmap:", err)
			os.Exit(1)
		}
		h.Write(b)
	}
	fmt.Println(hex.EncodeToString(h.Sum(nil)))
}
