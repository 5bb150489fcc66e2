// Command tinygguf writes the tiny deterministic test model (see package
// tinygguf) to a file:
//
//	go run ./tests/cmd/tinygguf -o tiny.gguf -seed 1
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/llmesh/llmesh/tests/tinygguf"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "tinygguf:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("tinygguf", flag.ContinueOnError)
	out := fs.String("o", "tiny.gguf", "output file")
	seed := fs.Uint64("seed", 1, "weights' seed: the same seed writes the same bytes")
	name := fs.String("name", "tiny", "general.name")
	if err := fs.Parse(args); err != nil {
		return err
	}
	f, err := os.Create(*out)
	if err != nil {
		return err
	}
	if err := tinygguf.Write(f, tinygguf.Spec{Name: *name, Seed: *seed}); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
