package store

import (
	"testing"
)

// TestFinishRunEndsRunningTasks checks that a run that ends leaves no task
// running: a task whose end its driver could not record (a full disk, say)
// ends failed, or cancelled with a cancelled run, and the others keep
// their records.
func TestFinishRunEndsRunningTasks(t *testing.T) {
	tests := []struct {
		run  RunStatus
		want TaskStatus
	}{
		{RunFailed, TaskFailed},
		{RunCancelled, TaskCancelled},
		{RunSucceeded, TaskFailed},
	}
	for _, test := range tests {
		t.Run(string(test.run), func(t *testing.T) {
			s := openTestStore(t)
			ctx := t.Context()
			run := createRun(t, s)
			done := Task{RunID: run, ID: "start", Step: "start", Attempt: 1, Started: at(1)}
			stuck := Task{RunID: run, ID: "body.0", Step: "body", Parents: []string{"start"}, Index: []int{0}, Attempt: 2, Started: at(2)}
			for _, tk := range []Task{done, stuck} {
				if err := s.StartTask(ctx, tk); err != nil {
					t.Fatal(err)
				}
			}
			done.Status, done.Ended = TaskSucceeded, at(3)
			attempt := Attempt{RunID: run, TaskID: "start", N: 1, Status: TaskSucceeded, Started: at(1), Ended: at(3)}
			if err := s.FinishTasks(ctx, []Task{done}, []Attempt{attempt}); err != nil {
				t.Fatal(err)
			}
			if err := s.FinishRun(ctx, run, test.run, "task body.0: recording its end: no space left on device"); err != nil {
				t.Fatal(err)
			}
			wantTask(t, s, done, []Attempt{attempt})
			got, err := s.Task(ctx, run, stuck.ID)
			if err != nil {
				t.Fatal(err)
			}
			const why = "the run ended before the end of this task could be recorded; the run's error says why"
			if got.Status != test.want || got.Ended.IsZero() || got.Error != why {
				t.Errorf("task left running = %+v, want it %s, ended, with error %q", got, test.want, why)
			}
			as, err := s.Attempts(ctx, run, stuck.ID)
			if err != nil {
				t.Fatal(err)
			}
			if len(as) != 1 || as[0].Status != test.want || as[0].Error != why {
				t.Errorf("its attempts = %+v, want one %s", as, test.want)
			}
		})
	}
}
