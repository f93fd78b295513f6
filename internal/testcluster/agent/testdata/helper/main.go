// Helper is what the agent's tests run in pods. It does what its
// arguments say, in order, each VERB:VALUE:
//
//	print:TEXT      print TEXT and a newline to standard output
//	stderr:TEXT     the same to standard error
//	lines:N         print "line 1" to "line N"
//	env:NAME        print NAME=VALUE, or NAME unset
//	write:PATH=TEXT write TEXT to the file PATH
//	cat:PATH        print the content of PATH
//	msg:TEXT        write TEXT to /dev/termination-log
//	sleep:DURATION  sleep
//	exit:CODE       exit with CODE
//	id:             print uid=UID gid=GID groups=GROUPS
//	ls:DIR          print the names in DIR, one a line
//	pid:            print pid=PID
//
// It also plays dagger for pods that kube.Pod makes: `step --result-ref
// PATH` prints its identity and the params of the task spec in
// $DAGGER_TASK_SPEC, writes a file in $TMPDIR, and writes "result of
// TASK" to PATH; `copy-runner DEST` copies its executable, found with
// os.Executable, to DEST.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "step":
			step(os.Args[2:])
			return
		case "copy-runner":
			copyRunner(os.Args[2:])
			return
		}
	}
	for _, arg := range os.Args[1:] {
		verb, value, _ := strings.Cut(arg, ":")
		switch verb {
		case "print":
			fmt.Println(value)
		case "stderr":
			fmt.Fprintln(os.Stderr, value)
		case "lines":
			n, err := strconv.Atoi(value)
			check(err)
			for i := 1; i <= n; i++ {
				fmt.Printf("line %d\n", i)
			}
		case "env":
			if v, ok := os.LookupEnv(value); ok {
				fmt.Printf("%s=%s\n", value, v)
			} else {
				fmt.Printf("%s unset\n", value)
			}
		case "write":
			name, text, _ := strings.Cut(value, "=")
			check(os.WriteFile(name, []byte(text), 0o644))
		case "cat":
			data, err := os.ReadFile(value)
			check(err)
			fmt.Printf("%s\n", data)
		case "msg":
			check(os.WriteFile("/dev/termination-log", []byte(value), 0o644))
		case "sleep":
			d, err := time.ParseDuration(value)
			check(err)
			time.Sleep(d)
		case "exit":
			code, err := strconv.Atoi(value)
			check(err)
			os.Exit(code)
		case "id":
			printID()
		case "ls":
			entries, err := os.ReadDir(value)
			check(err)
			for _, e := range entries {
				fmt.Println(e.Name())
			}
		case "pid":
			fmt.Printf("pid=%d\n", os.Getpid())
		default:
			check(fmt.Errorf("unknown argument %q", arg))
		}
	}
}

func printID() {
	groups, err := os.Getgroups()
	check(err)
	sort.Ints(groups)
	fmt.Printf("uid=%d gid=%d groups=%v\n", os.Getuid(), os.Getgid(), groups)
}

func step(args []string) {
	if len(args) != 2 || args[0] != "--result-ref" {
		check(fmt.Errorf("usage: step --result-ref PATH, not %q", args))
	}
	var spec struct {
		TaskID string            `json:"task_id"`
		Params map[string]string `json:"params"`
	}
	check(json.Unmarshal([]byte(os.Getenv("DAGGER_TASK_SPEC")), &spec))
	printID()
	keys := make([]string, 0, len(spec.Params))
	for k := range spec.Params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Printf("param %s=%s\n", k, spec.Params[k])
	}
	check(os.WriteFile(filepath.Join(os.Getenv("TMPDIR"), "scratch"), []byte("x"), 0o600))
	check(os.WriteFile(args[1], []byte("result of "+spec.TaskID), 0o644))
}

func copyRunner(args []string) {
	if len(args) != 1 {
		check(fmt.Errorf("usage: copy-runner DEST, not %q", args))
	}
	exe, err := os.Executable()
	check(err)
	src, err := os.Open(exe)
	check(err)
	defer src.Close()
	dst, err := os.OpenFile(args[0], os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o555)
	check(err)
	_, err = io.Copy(dst, src)
	check(err)
	check(dst.Close())
	fmt.Printf("copied %s to %s\n", exe, args[0])
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(2)
	}
}
