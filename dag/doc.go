// Package dag is the static model of a flow: its steps, the transitions
// between them, its parameters, step options and loads, all read from the
// syntax tree of a .star file without running any of it.
//
// [Extract] builds a [Graph] from a parsed file and reports misuse of the
// flow builtins it finds on the way; [Validate] checks the graph as a whole
// (entry and exit steps, cycles, reachability, how fan-outs and joins nest).
// Both report every problem at once, as an [ErrorList] of positioned errors.
// The renderers ([WriteJSON], [WriteDOT], [WriteMermaid]) draw a graph for
// people and tools.
//
// The package imports no executor: whatever runs a flow depends on it, never
// the other way round.
package dag
