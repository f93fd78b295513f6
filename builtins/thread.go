package builtins

import (
	"context"

	"go.starlark.net/starlark"
)

const contextKey = "dagger.context"

// SetThreadContext makes ctx the context of the code that runs on thread: the
// context of the run, for the flow's top-level code, and of the task, for
// a step. dagger sets it on every thread it runs code on.
func SetThreadContext(thread *starlark.Thread, ctx context.Context) { thread.SetLocal(contextKey, ctx) }

// ThreadContext returns the context of the code running on thread, which a
// builtin that blocks, such as one that queries a database or calls a
// service, passes on, so that it stops when the task is cancelled or
// times out. It is context.Background() on a thread dagger did not set
// one on.
func ThreadContext(thread *starlark.Thread) context.Context {
	if ctx, ok := thread.Local(contextKey).(context.Context); ok {
		return ctx
	}
	return context.Background()
}
