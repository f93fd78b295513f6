package starlark

import (
	"context"
	"errors"

	sl "go.starlark.net/starlark"

	"github.com/daggerflow/dagger/builtins"
)

// An Error is a Starlark runtime error. Its message is the backtrace of the
// calls that led to it, with the flow's file:line:col of each.
type Error struct {
	Msg       string // the error alone
	Backtrace string // "Traceback (most recent call last): ... Error: msg"
	err       error
}

func (e *Error) Error() string { return e.Backtrace }
func (e *Error) Unwrap() error { return e.err }

// evalError gives a Starlark error its backtrace; other errors pass.
func evalError(err error) error {
	var ee *sl.EvalError
	if errors.As(err, &ee) {
		return &Error{Msg: ee.Msg, Backtrace: ee.Backtrace(), err: err}
	}
	return err
}

// cancelOnDone cancels thread when ctx is done, until stop is called.
func cancelOnDone(ctx context.Context, thread *sl.Thread) (stop func() bool) {
	return context.AfterFunc(ctx, func() {
		thread.Cancel(context.Cause(ctx).Error())
	})
}

// Call calls fn with args on thread, cancelling the thread when ctx is
// done; builtins reach ctx through builtins.Context. A Starlark error comes
// back as an *Error with its backtrace.
func Call(ctx context.Context, thread *sl.Thread, fn sl.Value, args ...sl.Value) (sl.Value, error) {
	builtins.SetThreadContext(thread, ctx)
	stop := cancelOnDone(ctx, thread)
	defer stop()
	v, err := sl.Call(thread, fn, args, nil)
	if err != nil {
		return nil, evalError(err)
	}
	return v, nil
}
