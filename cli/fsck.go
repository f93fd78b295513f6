package cli

import (
	"fmt"

	urfave "github.com/urfave/cli/v2"

	"github.com/daggerflow/dagger/store"
)

func fsckCommand() *urfave.Command {
	return &urfave.Command{
		Name:  "fsck",
		Usage: "check that the store is consistent",
		Description: "Fsck reads the whole store and checks it: that every blob's content hashes\n" +
			"to its name, that every blob a run, task or attempt needs is there, and that\n" +
			"the database is sound. It prints each problem found and exits with 1 if\n" +
			"there is any, and notes the runs whose process died. With --repair, it\n" +
			"removes the corrupt blobs, for the next run that makes their content to\n" +
			"write them again. It may run while other dagger commands use the store.",
		Flags: []urfave.Flag{
			&urfave.StringFlag{Name: "store", Usage: "check the store in `DIR`"},
			&urfave.BoolFlag{Name: "repair", Usage: "remove the corrupt blobs it finds, which the next run that makes their content, or dagger resume --from, writes again"},
		},
		Action: fsck,
	}
}

func fsck(c *urfave.Context) error {
	if c.NArg() != 0 {
		return &usageError{cmd: c.Command.HelpName, msg: "takes no arguments"}
	}
	// Only a repair writes: a check reads, even a store it cannot write.
	st, dir, err := openStore(c.Context, c.String("store"), c.Bool("repair"))
	if err != nil {
		return lookupFailed(err) // exit 2 if there is no store
	}
	defer st.Close()
	problems, err := st.Check(c.Context)
	if err != nil {
		return failed(fmt.Errorf("checking the store in %s: %w", dir, err))
	}
	for _, p := range problems {
		fmt.Fprintln(c.App.Writer, p)
	}
	if c.Bool("repair") {
		removed, err := st.Repair(c.Context, problems)
		for _, where := range removed {
			fmt.Fprintf(c.App.Writer, "%s: removed: the next run that makes its content writes it again\n", where)
		}
		if err != nil {
			return failed(err)
		}
	}
	// A dead run is no damage to the store, but no one will end it.
	dead, err := st.Runs(c.Context, store.RunFilter{Status: store.RunDead})
	if err != nil {
		return failed(err)
	}
	for _, r := range dead {
		fmt.Fprintf(c.App.Writer, "note: run %s of %s is recorded running, but its process is gone: dagger resume %s continues it\n", r.ID, r.Flow, r.ID)
	}
	if len(problems) > 0 {
		return failed(fmt.Errorf("the store in %s has %s", dir, plural(len(problems), "problem")))
	}
	_, err = fmt.Fprintf(c.App.Writer, "%s: ok\n", dir)
	return failed(err)
}
