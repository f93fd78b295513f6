package history

import (
	"fmt"
	"strings"

	"github.com/daggerflow/dagger/store"
)

// The errors of lookups, for errors.Is. The errors returned wrap them
// under messages of their own, which say what there is instead.
var (
	// ErrNotFound is store.ErrNotFound, as os.ErrNotExist is
	// fs.ErrNotExist, so that one test catches a run that is not there,
	// as the store reports it, and anything else that is not there.
	ErrNotFound = store.ErrNotFound
	// ErrAmbiguous is store.ErrAmbiguous: a run ID prefix that several
	// runs share, or a path that names several tasks where one is needed.
	ErrAmbiguous = store.ErrAmbiguous

	// ErrNoStore is a store directory that does not exist.
	ErrNoStore = fmt.Errorf("no store: %w", ErrNotFound)
	// ErrNoStep is a step that is neither the flow's nor a task's.
	ErrNoStep = fmt.Errorf("no such step: %w", ErrNotFound)
	// ErrNoTask is a task index that no task of the step has, or a step
	// that has no task yet.
	ErrNoTask = fmt.Errorf("no such task: %w", ErrNotFound)
	// ErrNoArtifact is an artifact the task does not have.
	ErrNoArtifact = fmt.Errorf("no such artifact: %w", ErrNotFound)
)

// A lookupError is a lookup that failed: msg says so to people, and kind,
// one of the errors above, to programs.
type lookupError struct {
	kind error
	msg  string
}

func (e *lookupError) Error() string { return e.msg }

func (e *lookupError) Unwrap() error { return e.kind }

// lookupErrorf returns a *lookupError of kind with a formatted message.
func lookupErrorf(kind error, format string, args ...any) error {
	return &lookupError{kind: kind, msg: fmt.Sprintf(format, args...)}
}

// maxListed is how many names a message lists.
const maxListed = 10

// listNames returns names for a message, the first few of many.
func listNames(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	if len(names) > maxListed {
		return fmt.Sprintf("%s, ... (%d in all)", strings.Join(names[:maxListed], ", "), len(names))
	}
	return strings.Join(names, ", ")
}
