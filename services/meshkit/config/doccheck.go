package config

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// DocRow is one row of a flag reference table in Markdown:
//
//	| service | flag | env | default | what it does |
//	| --- | --- | --- | --- | --- |
//	| router | `-queue-size` | `LLMESH_ROUTER_QUEUE_SIZE` | `256` | … |
//
// Env holds the code spans of the env cell in order; Default is the first
// code span of the default cell, or "" when the cell starts with none
// (no default: "–", "off", …).
type DocRow struct {
	Line    int
	Service string
	Flag    string
	Env     []string
	Default string
}

var codeSpan = regexp.MustCompile("`([^`]*)`")

// DocRows reads every row of every table in markdown whose header begins
// with the columns service, flag, env, default.
func DocRows(markdown string) []DocRow {
	var rows []DocRow
	inTable := false
	for i, line := range strings.Split(markdown, "\n") {
		cells := tableCells(line)
		if cells == nil {
			inTable = false
			continue
		}
		if len(cells) >= 4 && strings.EqualFold(cells[0], "service") && strings.EqualFold(cells[1], "flag") &&
			strings.EqualFold(cells[2], "env") && strings.EqualFold(cells[3], "default") {
			inTable = true
			continue
		}
		if !inTable || len(cells) < 4 || strings.HasPrefix(cells[0], "---") {
			continue
		}
		r := DocRow{Line: i + 1, Service: cells[0], Flag: strings.TrimPrefix(strings.Trim(cells[1], "`"), "-")}
		for _, m := range codeSpan.FindAllStringSubmatch(cells[2], -1) {
			r.Env = append(r.Env, m[1])
		}
		if strings.HasPrefix(cells[3], "`") {
			if m := codeSpan.FindStringSubmatch(cells[3]); m != nil {
				r.Default = m[1]
			}
		}
		rows = append(rows, r)
	}
	return rows
}

func tableCells(line string) []string {
	line = strings.TrimSpace(line)
	if !strings.HasPrefix(line, "|") || !strings.HasSuffix(line, "|") || len(line) < 2 {
		return nil
	}
	parts := strings.Split(line[1:len(line)-1], "|")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts
}

// CheckDoc compares the rows of markdown's flag tables for service with
// the flags it registers: each flag has exactly one row, with the same
// variables in the same order and the same default, and each row is a
// flag. It returns one message per difference.
func CheckDoc(markdown, service string, flags []Info) []string {
	var problems []string
	rows := map[string]DocRow{}
	for _, r := range DocRows(markdown) {
		if r.Service != service {
			continue
		}
		if prev, dup := rows[r.Flag]; dup {
			problems = append(problems, fmt.Sprintf("line %d: %s -%s is documented twice (also line %d)", r.Line, service, r.Flag, prev.Line))
		}
		rows[r.Flag] = r
	}
	for _, f := range flags {
		r, ok := rows[f.Name]
		if !ok {
			problems = append(problems, fmt.Sprintf("%s -%s (env %v, default %q) has no row", service, f.Name, f.Env, f.Default))
			continue
		}
		delete(rows, f.Name)
		if !slices.Equal(r.Env, f.Env) {
			problems = append(problems, fmt.Sprintf("line %d: %s -%s: env %v, the flag reads %v", r.Line, service, f.Name, r.Env, f.Env))
		}
		if r.Default != f.Default {
			problems = append(problems, fmt.Sprintf("line %d: %s -%s: default %q, the flag's is %q", r.Line, service, f.Name, r.Default, f.Default))
		}
	}
	for name, r := range rows {
		problems = append(problems, fmt.Sprintf("line %d: %s -%s is documented but not registered", r.Line, service, name))
	}
	slices.Sort(problems)
	return problems
}
