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
// the host, the boot of its kernel, the process ID and the process's start
// time, so that a PID used again by another process is told apart.
type driver struct {
	host, boot string
	pid        int
	start      string
}

// thisDriver returns this process as a run's driver, as the store records
// it; "" where it cannot tell, and the run is then never shown dead.
func thisDriver() string {
	d, ok := readDriver(os.Getpid())
	if !ok {
		return ""
	}
	return fmt.Sprintf("%s %s %d %s", d.host, d.boot, d.pid, d.start)
}

// readDriver reads what names the process pid of this machine, from
// Linux's /proc.
func readDriver(pid int) (driver, bool) {
	host, err := os.Hostname()
	if err != nil {
		return driver{}, false
	}
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return driver{}, false
	}
	start, ok := startTime(pid)
	if !ok {
		return driver{}, false
	}
	return driver{host: host, boot: string(bytes.TrimSpace(boot)), pid: pid, start: start}, true
}

// startTime returns when the process pid started, in clock ticks since
// boot, from the 22nd field of /proc/PID/stat; false if there is no such
// process.
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

// gone reports whether the driver recorded, as thisDriver wrote it, is a
// process of this machine that no longer runs. A driver of another
// machine, or one not recorded, is not known to be gone.
func gone(recorded string) bool {
	f := strings.Fields(recorded)
	if len(f) != 4 {
		return false
	}
	pid, err := strconv.Atoi(f[2])
	if err != nil {
		return false
	}
	host, err := os.Hostname()
	if err != nil || host != f[0] {
		return false
	}
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return false
	}
	if string(bytes.TrimSpace(boot)) != f[1] {
		return true // the machine restarted since
	}
	start, ok := startTime(pid)
	return !ok || start != f[3]
}
