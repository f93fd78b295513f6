package store

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// RunDead is the status a run recorded as running shows when the process
// that ran it is gone (killed, out of memory, a machine that restarted):
// no one will finish it, and dagger resume continues it. The store never
// records it; it reads it from the run's driver.
const RunDead RunStatus = "dead"

// A driver names the process that runs a run, as the store records it:
// the host, the boot of its kernel, the PID namespace, the process ID and
// the process's start time, so that a PID used again by another process,
// or the same PID in another container, is told apart.
type driver struct {
	host, boot, pidns string
	pid               int
	start             string
}

func (d driver) String() string {
	return fmt.Sprintf("%s %s %s %d %s", d.host, d.boot, d.pidns, d.pid, d.start)
}

// machine is what a driver's record is compared with: this process's
// host, boot and PID namespace, read once per query.
type machine struct {
	host, boot, pidns string
	ok                bool
}

// thisMachine reads where this process runs, from Linux's /proc; not ok
// elsewhere.
func thisMachine() machine {
	host, err := os.Hostname()
	if err != nil {
		return machine{}
	}
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return machine{}
	}
	ns, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		return machine{}
	}
	return machine{host: host, boot: string(bytes.TrimSpace(boot)), pidns: ns, ok: true}
}

// thisDriver returns this process as a run's driver, as the store records
// it; "" where it cannot tell, and the run is then never shown dead.
func thisDriver() string {
	m := thisMachine()
	start, ok := startTime(os.Getpid())
	if !m.ok || !ok {
		return ""
	}
	return driver{host: m.host, boot: m.boot, pidns: m.pidns, pid: os.Getpid(), start: start}.String()
}

// startTime returns when the process pid started, in clock ticks since
// boot, from the 22nd field of /proc/PID/stat; false if it cannot be
// read.
func startTime(pid int) (string, bool) {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", false
	}
	// The command name, field 2, is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return "", false
	}
	fields := strings.Fields(string(stat[i+1:]))
	// Fields from the state, field 3, on: the start time is field 22.
	if len(fields) < 20 {
		return "", false
	}
	return fields[19], true
}

// A liveness is what this machine knows of a run's driver.
type liveness int

const (
	unknown liveness = iota // of another host or container, or not recorded
	alive
	gone
)

// judge says whether the driver recorded, as thisDriver wrote it, runs,
// as seen from m, this process's machine.
func (m machine) judge(recorded string) liveness {
	f := strings.Fields(recorded)
	if !m.ok || len(f) != 5 || f[0] != m.host {
		return unknown
	}
	if f[1] != m.boot {
		return gone // the machine restarted since
	}
	pid, err := strconv.Atoi(f[3])
	if err != nil || f[2] != m.pidns {
		return unknown
	}
	if start, ok := startTime(pid); ok {
		if start == f[4] {
			return alive
		}
		return gone
	}
	// /proc may hide other users' processes (hidepid): ask the kernel,
	// which tells a PID in use, not whose.
	if processExists(pid) {
		return unknown
	}
	return gone
}

// Alive reports whether the process that runs r is known to run now: r
// is recorded running, and its driver is a process of this machine and
// PID namespace that still runs. A run of another machine is not known
// to be alive, nor to be dead.
func Alive(r Run) bool {
	return r.Status == RunRunning && thisMachine().judge(r.Driver) == alive
}
