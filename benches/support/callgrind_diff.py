#!/usr/bin/env python3
"""What one server adds to a round trip over another, per call, from two callgrind profiles.

BENCHMARKS.md, section 1, twenty-sixth round. Build the overhead bench, copy its binary, and
profile each server with the same number of calls:

    cargo bench --bench overhead --no-run
    cp target/release/deps/overhead-<hash> /tmp/ov
    for p in bare spooled; do
      PROFILE=$p CALLS=4000 valgrind --tool=callgrind --dump-instr=yes \\
        --callgrind-out-file=/tmp/cg-$p.out /tmp/ov --bench
    done
    python3 benches/support/callgrind_diff.py 4000 /tmp/ov /tmp/cg-bare.out /tmp/cg-spooled.out

It prints, per call (the difference over the number of calls, so the setup both runs share
cancels out): instructions, atomic instructions (`lock`-prefixed, `xchg` with memory,
`mfence`) and 64-byte code lines run, each in all and by function. Needs `objdump` for the
atomic instructions. Standard library only.
"""

import collections
import re
import subprocess
import sys

_NAMED = re.compile(r"\((\d+)\)(?: (.*))?")


def parse(path):
    """Instructions executed at each (object, address), and the function of each address."""
    counts = collections.Counter()
    function_at = {}
    objects, functions = {}, {}
    obj = fn = None
    last_addr = last_line = 0
    after_call = False

    def position(token, last):
        if token == "*":
            return last
        if token[0] in "+-":
            return last + int(token, 0)
        return int(token, 0)

    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            head = line[0]
            if head.isdigit() or head in "+-*":
                parts = line.split()
                last_addr = position(parts[0], last_addr)
                if len(parts) > 1:
                    last_line = position(parts[1], last_line)
                if after_call:
                    # The cost line after `calls=` is the callee's inclusive cost.
                    after_call = False
                    continue
                ir = int(parts[2]) if len(parts) > 2 else 0
                counts[(obj, last_addr)] += ir
                function_at[(obj, last_addr)] = fn
            elif line.startswith("calls="):
                after_call = True
            elif "=" in line:
                key, value = line.split("=", 1)
                m = _NAMED.match(value)
                if not m:
                    continue
                if key in ("ob", "cob"):
                    if m.group(2):
                        objects[m.group(1)] = m.group(2)
                    if key == "ob":
                        obj = objects[m.group(1)]
                elif key in ("fn", "cfn"):
                    if m.group(2):
                        # `f'2` is `f` at recursion depth 2: the same code.
                        functions[m.group(1)] = re.sub(r"'\d+$", "", m.group(2))
                    if key == "fn":
                        fn = functions[m.group(1)]
    return counts, function_at


def atomic_addresses(binary):
    """Addresses of the binary's atomic instructions."""
    out = subprocess.run(
        ["objdump", "-d", "--no-show-raw-insn", binary],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found = set()
    for line in out.splitlines():
        m = re.match(r"\s*([0-9a-f]+):\s+(.*)", line)
        if not m:
            continue
        ins = m.group(2).strip()
        if ins.startswith("lock ") or ins.startswith("mfence") or (
            ins.startswith("xchg ") and "(" in ins
        ):
            found.add(int(m.group(1), 16))
    return found


def figures(path, binary, atomics, calls):
    counts, function_at = parse(path)
    name = binary.rsplit("/", 1)[-1]
    instructions = collections.Counter()
    atomic = collections.Counter()
    # A code line ran once per call at most as often as its most-run instruction did.
    line_runs = collections.Counter()
    line_fn = {}
    for (obj, addr), ir in counts.items():
        fn = function_at[(obj, addr)] or "?"
        instructions[fn] += ir
        if obj and obj.endswith(name) and addr in atomics:
            atomic[fn] += ir
        key = (obj, addr >> 6)
        line_runs[key] = max(line_runs[key], ir)
        line_fn.setdefault(key, fn)
    lines = collections.Counter()
    for key, runs in line_runs.items():
        lines[line_fn[key]] += min(1.0, runs / calls)
    return instructions, atomic, lines


def report(title, base, other, per_call, top=25):
    total = (sum(other.values()) - sum(base.values())) / per_call
    print(f"{title}: {sum(base.values()) / per_call:,.1f} -> +{total:,.1f} per call")
    diff = sorted(
        ((other.get(k, 0) - base.get(k, 0)) / per_call, k) for k in set(base) | set(other)
    )
    for d, k in reversed(diff[-top:]):
        if abs(d) >= 0.5:
            print(f"  {d:+9.1f}  {k[:120]}")
    print()


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    calls = int(sys.argv[1])
    binary, base_path, other_path = sys.argv[2:]
    atomics = atomic_addresses(binary)
    base = figures(base_path, binary, atomics, calls)
    other = figures(other_path, binary, atomics, calls)
    report("instructions", base[0], other[0], calls)
    report("atomic instructions", base[1], other[1], calls)
    # Lines are already per call.
    report("64-byte code lines run", base[2], other[2], 1)


if __name__ == "__main__":
    main()
