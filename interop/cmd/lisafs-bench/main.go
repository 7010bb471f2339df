// Command lisafs-bench measures LISAFS servers with gVisor's own Go client
// (gvisor.dev/gvisor/pkg/lisafs): our Rust server (lisafs-serve) against
// gVisor's runsc/fsgofer (the gvisor-gofer command next to this one), on the
// same directory contents and the same workloads, over the socket and over
// flipcall channels. It also measures the raw-syscall floor and the server
// memory held per idle control FD.
//
// It is a benchmark driver, not a test: it prints one JSON object per line
// on stdout (the Node orchestrator bench/run.mjs collects them) and progress
// on stderr. See bench/README.md.
//
// Usage:
//
//	lisafs-bench --ours BIN --gofer BIN [--parts rpc,rtt,floor,mem,backends]
//	             [--round-ms 600] [--rtt-round-ms 1000] [--floor-round-ms 500]
//	             [--rounds 5] [--workloads walk_stat,...] [--conns 1,8]
//	             [--transports socket,channel] [--mem-fds 100000] [--count N]
//	             [--workdir DIR] [--node BIN --node-serve interop/node-serve.mjs]
//
// Every part spawns the servers it needs itself (--socket mode, one server
// process per kind, one connection per client) and stops them when done.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"
)

type options struct {
	ours, gofer string
	parts       map[string]bool
	round       time.Duration
	rttRound    time.Duration
	floorRound  time.Duration
	rounds      int
	workloads   []string
	conns       []int
	transports  []string
	memFDs      int
	workdir     string
	// count, when set, makes every RPC round run exactly count operations
	// per connection, without warm-up (for syscall counting with strace).
	count int
	// node and nodeServe run interop/node-serve.mjs (the backends part).
	node, nodeServe string
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "lisafs-bench: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		o                                         options
		parts, workloads, conns, trs              string
		roundMS, rttRoundMS, floorRoundMS, memFDs int
	)
	flag.StringVar(&o.ours, "ours", "", "path of lisafs-serve (our server)")
	flag.StringVar(&o.gofer, "gofer", "", "path of gvisor-gofer (gVisor's runsc/fsgofer)")
	flag.StringVar(&parts, "parts", "rpc,rtt,floor,mem", "parts to run")
	flag.IntVar(&roundMS, "round-ms", 600, "length of one round of an RPC workload, ms")
	flag.IntVar(&rttRoundMS, "rtt-round-ms", 1000, "length of one round of the empty-RPC measurement, ms")
	flag.IntVar(&floorRoundMS, "floor-round-ms", 500, "length of one round of the syscall-floor measurement, ms")
	flag.IntVar(&o.rounds, "rounds", 5, "rounds per measurement (the median is reported)")
	flag.StringVar(&workloads, "workloads", strings.Join(workloadNames(), ","), "RPC workloads to run")
	flag.StringVar(&conns, "conns", "1,8", "connection counts")
	flag.StringVar(&trs, "transports", "socket,channel", "transports: socket (the connection's socket only) and/or channel (flipcall channels after StartChannels)")
	flag.IntVar(&memFDs, "mem-fds", 100000, "idle control FDs to create for the memory part (capped by RLIMIT_NOFILE)")
	flag.IntVar(&o.count, "count", 0, "analysis mode: run exactly this many operations per connection and round, no warm-up")
	flag.StringVar(&o.node, "node", "node", "node binary, for the backends part")
	flag.StringVar(&o.nodeServe, "node-serve", "", "path of interop/node-serve.mjs, for the backends part")
	flag.StringVar(&o.workdir, "workdir", "", "directory for the served trees (default: a new temporary directory, removed at the end)")
	flag.Parse()

	o.parts = map[string]bool{}
	for _, p := range splitList(parts) {
		o.parts[p] = true
	}
	o.round = time.Duration(roundMS) * time.Millisecond
	o.rttRound = time.Duration(rttRoundMS) * time.Millisecond
	o.floorRound = time.Duration(floorRoundMS) * time.Millisecond
	o.workloads = splitList(workloads)
	for _, w := range o.workloads {
		if findWorkload(w) == nil {
			return fmt.Errorf("unknown workload %q (have %s)", w, strings.Join(workloadNames(), ", "))
		}
	}
	for _, c := range splitList(conns) {
		n, err := strconv.Atoi(c)
		if err != nil || n < 1 {
			return fmt.Errorf("--conns: bad count %q", c)
		}
		o.conns = append(o.conns, n)
	}
	o.transports = splitList(trs)
	for _, tr := range o.transports {
		if tr != "socket" && tr != "channel" {
			return fmt.Errorf("--transports: unknown transport %q", tr)
		}
	}
	o.memFDs = memFDs
	if o.rounds < 1 {
		return fmt.Errorf("--rounds must be >= 1")
	}
	needServers := o.parts["rpc"] || o.parts["rtt"] || o.parts["mem"]
	if needServers && (o.ours == "" || o.gofer == "") {
		return fmt.Errorf("--ours and --gofer are required")
	}
	if o.parts["backends"] && (o.ours == "" || o.nodeServe == "") {
		return fmt.Errorf("--ours and --node-serve are required for the backends part")
	}
	for _, p := range []*string{&o.ours, &o.gofer, &o.nodeServe} {
		if *p != "" {
			abs, err := filepath.Abs(*p)
			if err != nil {
				return err
			}
			*p = abs
		}
	}

	work := o.workdir
	if work == "" {
		d, err := os.MkdirTemp("", "lisafs-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		work = d
	} else if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}

	emit(map[string]any{
		"part":         "meta",
		"goVersion":    runtime.Version(),
		"gomaxprocs":   runtime.GOMAXPROCS(0),
		"numCPU":       runtime.NumCPU(),
		"rounds":       o.rounds,
		"roundMs":      roundMS,
		"rttRoundMs":   rttRoundMS,
		"floorRoundMs": floorRoundMS,
	})

	if o.parts["rpc"] || o.parts["rtt"] || o.parts["floor"] || o.parts["backends"] {
		root := filepath.Join(work, "tree")
		progress("creating the served tree in %s", root)
		if err := makeTree(root); err != nil {
			return fmt.Errorf("creating the tree: %w", err)
		}
		if o.parts["floor"] {
			if err := runFloor(&o, root); err != nil {
				return fmt.Errorf("floor: %w", err)
			}
		}
		if o.parts["rpc"] || o.parts["rtt"] {
			if err := runRPC(&o, root, filepath.Join(work, "sock")); err != nil {
				return fmt.Errorf("rpc: %w", err)
			}
		}
		if o.parts["backends"] {
			if err := runBackends(&o, root, filepath.Join(work, "bsock")); err != nil {
				return fmt.Errorf("backends: %w", err)
			}
		}
	}
	if o.parts["mem"] {
		if err := runMem(&o, filepath.Join(work, "memtree"), filepath.Join(work, "memsock")); err != nil {
			return fmt.Errorf("mem: %w", err)
		}
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// emit prints one result as a JSON line on stdout.
func emit(v map[string]any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	os.Stdout.Write(append(b, '\n'))
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "lisafs-bench: "+format+"\n", args...)
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	n := len(s)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
