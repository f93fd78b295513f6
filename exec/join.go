package exec

import (
	"encoding/hex"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/daggerflow/dagger/builtins"
	"github.com/daggerflow/dagger/history"
)

// A joinState gathers the inputs of a join as their tasks end, in a few
// tens of bytes each rather than the hundreds an Input and its map cost:
// a join of a million-task foreach must not hold a million maps. An
// input's task ID and index follow from the fan-out; the hashes of its
// artifacts are packed as digests when its artifacts have the same names
// as the first input that packed, as the inputs of a foreach usually do.
type joinState struct {
	fan     fan // the fan-out the join closes
	foreach bool
	got     int
	inputs  []joinInput
	names   []string              // of packed inputs, sorted
	digests [][hashDigestLen]byte // len(names) per input, packed or not
}

// A joinInput is what a joinState keeps of one input.
type joinInput struct {
	step    string // the step of the task that reached the join
	attempt int32
	packed  bool              // its artifacts' hashes are in digests
	other   map[string]string // its artifacts, if not packed
}

const (
	hashPrefix    = "sha256:"
	hashDigestLen = 32
)

func newJoinState(f fan, foreach bool) *joinState {
	return &joinState{fan: f, foreach: foreach, inputs: make([]joinInput, f.n)}
}

// add records input i, the task of spec, which set artifacts.
func (js *joinState) add(i int, spec *TaskSpec, artifacts map[string]string) {
	in := joinInput{step: spec.Step, attempt: int32(spec.Attempt)}
	if js.names == nil && len(artifacts) > 0 {
		js.names = slices.Sorted(maps.Keys(artifacts))
		js.digests = make([][hashDigestLen]byte, len(js.inputs)*len(js.names))
	}
	in.packed = js.pack(i, artifacts)
	if !in.packed {
		in.other = artifacts
	}
	js.inputs[i] = in
	js.got++
}

// pack stores the hashes of artifacts as digests of input i, if they have
// the packed names and are canonical hashes.
func (js *joinState) pack(i int, artifacts map[string]string) bool {
	if len(artifacts) != len(js.names) || len(js.names) == 0 {
		return false
	}
	k := len(js.names)
	for j, name := range js.names {
		h, ok := artifacts[name]
		if !ok || !decodeHash(&js.digests[i*k+j], h) {
			return false
		}
	}
	return true
}

// decodeHash sets *d to the digest of h, if h is a canonical hash, which
// encodeHash gives back.
func decodeHash(d *[hashDigestLen]byte, h string) bool {
	hexDigits, ok := strings.CutPrefix(h, hashPrefix)
	if !ok || len(hexDigits) != 2*hashDigestLen || strings.ToLower(hexDigits) != hexDigits {
		return false
	}
	_, err := hex.Decode(d[:], []byte(hexDigits))
	return err == nil
}

func encodeHash(d *[hashDigestLen]byte) string {
	return hashPrefix + hex.EncodeToString(d[:])
}

// A hashList is a list of hashes, such as the elements of a foreach, held
// as digests, 32 bytes each rather than 96, unless one is not canonical.
type hashList struct {
	digests [][hashDigestLen]byte
	hashes  []string // if not packed
}

func newHashList(hashes []string) *hashList {
	l := &hashList{digests: make([][hashDigestLen]byte, len(hashes))}
	for i, h := range hashes {
		if !decodeHash(&l.digests[i], h) {
			return &hashList{hashes: hashes}
		}
	}
	return l
}

func (l *hashList) len() int {
	if l.hashes != nil {
		return len(l.hashes)
	}
	return len(l.digests)
}

func (l *hashList) at(i int) string {
	if l.hashes != nil {
		return l.hashes[i]
	}
	return encodeHash(&l.digests[i])
}

func (js *joinState) len() int { return len(js.inputs) }

// index returns the foreach indices of input i.
func (js *joinState) index(i int) []int {
	index := js.fan.task.spec.Index
	if js.foreach {
		return append(slices.Clip(index), i)
	}
	return index
}

// taskID returns the ID of the task of input i.
func (js *joinState) taskID(i int) string {
	return history.TaskID(js.inputs[i].step, js.index(i))
}

// artifacts returns the artifacts of input i: name -> hash.
func (js *joinState) artifacts(i int) map[string]string {
	in := &js.inputs[i]
	if !in.packed {
		return in.other
	}
	m := make(map[string]string, len(js.names))
	for j, name := range js.names {
		m[name] = js.hash(i, j)
	}
	return m
}

// hash returns the hash of packed artifact j of input i.
func (js *joinState) hash(i, j int) string {
	return encodeHash(&js.digests[i*len(js.names)+j])
}

// element returns the foreach element of input i: that of its branch of
// a foreach, or, at the join of a split, that of the task that split.
func (js *joinState) element(i int) string {
	if js.foreach {
		return js.fan.task.elements.at(i)
	}
	return js.fan.task.spec.Input
}

// artifact returns the hash of artifact name of input i, if it has one.
func (js *joinState) artifact(i int, name string) (string, bool) {
	in := &js.inputs[i]
	if !in.packed {
		h, ok := in.other[name]
		return h, ok
	}
	j, ok := slices.BinarySearch(js.names, name)
	if !ok {
		return "", false
	}
	return js.hash(i, j), true
}

// input returns input i as a TaskSpec holds it.
func (js *joinState) input(i int) Input {
	in := &js.inputs[i]
	return Input{TaskID: js.taskID(i), Step: in.step, Attempt: int(in.attempt), Index: js.index(i), Input: js.element(i), Artifacts: js.artifacts(i)}
}

// all returns every input, as a TaskSpec holds them.
func (js *joinState) all() []Input {
	inputs := make([]Input, js.len())
	for i := range inputs {
		inputs[i] = js.input(i)
	}
	return inputs
}

// parents returns the IDs of the inputs' tasks.
func (js *joinState) parents() []string {
	ids := make([]string, js.len())
	for i := range ids {
		ids[i] = js.taskID(i)
	}
	return ids
}

// names returns the names of the artifacts of input i, in an order of its
// own.
func (js *joinState) artifactNames(i int) []string {
	in := &js.inputs[i]
	if in.packed {
		return js.names
	}
	return slices.Collect(maps.Keys(in.other))
}

// merge returns the artifacts a join's ctx starts with: those whose value
// is the same in every input, as saved, which is to say of the same hash.
// The others are conflicts, described by two inputs that disagree, or one
// that has the artifact and one that does not.
//
// Values equal with == but saved differently, such as 1 and 1.0, or two
// dicts in different orders, disagree: Starlark tells them apart (by type,
// by iteration order), so a join that kept one would lose the others;
// and the scheduler compares hashes without loading any value. The
// conflict's error, if the join reads the artifact, shows both values.
func (js *joinState) merge() (artifacts map[string]string, conflicts map[string]builtins.Conflict) {
	artifacts = make(map[string]string)
	names := make(map[string]int) // artifact -> first input that has it
	for i := range js.len() {
		if i > 0 && js.inputs[i].packed && js.inputs[i-1].packed {
			continue // the same names as the input before
		}
		for _, name := range js.artifactNames(i) {
			if _, seen := names[name]; !seen {
				names[name] = i
			}
		}
	}
	for name, first := range names {
		h, _ := js.artifact(first, name)
		i := js.disagrees(name, h)
		if i < 0 {
			artifacts[name] = h
			continue
		}
		if conflicts == nil {
			conflicts = make(map[string]builtins.Conflict)
		}
		conflicts[name] = builtins.Conflict{Inputs: [2]builtins.ConflictInput{js.label(first, name), js.label(i, name)}}
	}
	return artifacts, conflicts
}

// disagrees returns the first input whose artifact name is not h, or -1.
func (js *joinState) disagrees(name, h string) int {
	j, packedName := slices.BinarySearch(js.names, name)
	var want [hashDigestLen]byte
	packedName = packedName && decodeHash(&want, h)
	for i := range js.inputs {
		if packedName && js.inputs[i].packed {
			// Without making the hash of every input a string.
			if js.digests[i*len(js.names)+j] != want {
				return i
			}
			continue
		}
		if other, ok := js.artifact(i, name); !ok || other != h {
			return i
		}
	}
	return -1
}

// label describes input i of a join, and its value of artifact name, for
// a conflict.
func (js *joinState) label(i int, name string) builtins.ConflictInput {
	h, _ := js.artifact(i, name)
	in := builtins.ConflictInput{Label: "element " + strconv.Itoa(i), TaskID: js.taskID(i), Hash: h}
	if !js.foreach {
		in.Label = "branch " + js.inputs[i].step
	}
	return in
}
