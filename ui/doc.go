// Package ui serves "dagger ui": a web page of the runs a store recorded,
// live as they run, and the JSON API it is drawn from.
//
// # One reader of history
//
// The API serves the JSON of package history (history.RunJSON,
// RunDetailJSON, StepTasksJSON, TaskDetailJSON, LogLine) and the events of
// "dagger run --json" (exec.Event), so that the page, the command line and
// programs that embed dagger read runs in the same words. The page is a
// client of that API alone: whatever it shows, a tool can read too.
//
// # Width
//
// A run may have 100 000 tasks. No request reads them all into memory:
// statistics stream a few columns of each task once (store.TaskStates),
// a step's tasks come a page at a time in the order asked for, read off
// an index of that order (store.TaskPage), a task's children likewise
// (store.Children), and the event stream asks only for the tasks recorded
// since it last looked and those it saw running (store.TasksChanged). A
// history.Run the server holds is a head (history.LoadHead): the run's
// record, its code, and a LogReader's access to output, without tasks.
//
// # Live without notifications
//
// Runs are written by other processes, which cannot tell a reader they
// wrote, so the event stream polls the store, as "dagger logs --follow"
// does, a few times a second, and turns what changed into the events
// "dagger run --json" would have printed: task_started, task_output (from
// the output recorded, or while a task runs, from what the run's process
// keeps for followers), task_retrying, task_finished and run_finished.
// task_waiting is not recorded, and is never sent. A dead run will not
// go on, so its stream ends too, with a run_finished of status dead, and
// the page stops following it.
//
// # Safety
//
// The server only reads: it opens the store with history.Open. Every
// string a flow made (step names, prints, artifact values, errors) reaches
// the page as JSON and is put in it as text, never as markup; a Content
// Security Policy that allows only the server's own scripts and styles
// makes a string that slips through inert anyway. Paths name records,
// never files: each element is checked, as history.ParsePath checks a
// path, and looked up in the store. On an address other than loopback the
// server requires a token, compared in constant time, which a first visit
// gives as ?token= and the browser keeps as a cookie; on loopback without
// one, requests that name another host are refused, so that a web page
// elsewhere cannot reach the server through a name it points at 127.0.0.1.
package ui
