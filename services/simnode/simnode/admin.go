package simnode

import (
	"encoding/json"
	"net/http"
	"strings"
)

// handleSetFaults replaces all faults with the JSON body; omitted fields
// reset to their zero value, so {} restores a healthy node. Unknown fields
// are rejected because a misspelt fault silently doing nothing would make
// a test pass for the wrong reason.
func (s *Server) handleSetFaults(w http.ResponseWriter, r *http.Request) {
	var f Faults
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		writeJSON(w, http.StatusBadRequest, ollamaError{Error: "invalid faults: " + err.Error()})
		return
	}
	if dec.More() {
		writeJSON(w, http.StatusBadRequest, ollamaError{Error: "invalid faults: trailing data after JSON object"})
		return
	}
	if err := f.Validate(); err != nil {
		msg := strings.ReplaceAll(err.Error(), "\n", "; ") // errors.Join uses newlines
		writeJSON(w, http.StatusBadRequest, ollamaError{Error: "invalid faults: " + msg})
		return
	}
	s.SetFaults(f)
	writeJSON(w, http.StatusOK, f)
}

// handleGetFaults reports the active faults, for debugging a running demo.
func (s *Server) handleGetFaults(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.currentFaults())
}

func (s *Server) handleStats(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.Stats())
}
