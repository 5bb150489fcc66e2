// Package repo locates the llmesh checkout the tests run in, and the tools
// the project's own scripts put into its bin/ directory.
package repo

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
)

// Root is the directory holding go.work.
func Root() (string, error) {
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Dir(file)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.work not found above " + filepath.Dir(file))
		}
		dir = parent
	}
}

// Tool returns bin/<name>, or an error naming the make target that builds
// it, so a suite that needs the tool fails rather than skips.
func Tool(name, target string) (string, error) {
	root, err := Root()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(root, "bin", name)
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("%s: %w (run `make %s`)", bin, err, target)
	}
	return bin, nil
}
