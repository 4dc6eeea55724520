//! The overhead bench's calibration: straight-line code of about the size that the pipeline
//! runs per call (the session row: ~6k instructions on ~630 instruction-cache lines, by
//! `valgrind --tool=cachegrind --cache-sim=yes`), with none of its work: no allocation, no
//! lock, no system call, no shared memory. Served by bare rmcp, it shows what running that
//! much code once per call costs on the machine at hand.

/// One step of [`run`]: one of eight independent lanes is changed with constants made from
/// the step's index at compile time, so every step stays three instructions of its own (an
/// `xor`, an `add` and a `rol`, with immediates) and the lanes run side by side.
macro_rules! step {
    ($x:ident, $i:expr) => {{
        const I: u64 = $i;
        const XOR: u64 = I.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 33;
        const ADD: u64 = I.wrapping_mul(0xBF58_476D_1CE4_E5B9) >> 33;
        const ROT: u32 = (I.wrapping_mul(0x94D0_49BB_1331_11EB) >> 58) as u32 + 1;
        const LANE: usize = (I % 8) as usize;
        $x[LANE] = ($x[LANE] ^ XOR).wrapping_add(ADD).rotate_left(ROT);
    }};
}

/// `$inner` twice: steps `2i` and `2i + 1` of the next size down.
macro_rules! twice {
    ($name:ident, $inner:ident) => {
        macro_rules! $name {
            ($x:ident, $i:expr) => {
                $inner!($x, 2 * ($i));
                $inner!($x, 2 * ($i) + 1);
            };
        }
    };
}

twice!(steps2, step);
twice!(steps4, steps2);
twice!(steps8, steps4);
twice!(steps16, steps8);
twice!(steps32, steps16);
twice!(steps64, steps32);
twice!(steps128, steps64);
twice!(steps256, steps128);
twice!(steps512, steps256);
twice!(steps1024, steps512);

/// 1,792 distinct steps (about 6k instructions and 32 KB of code), run once.
#[inline(never)]
pub fn run(seed: u64) -> u64 {
    let mut x = [seed; 8];
    for (i, lane) in x.iter_mut().enumerate() {
        *lane = std::hint::black_box(*lane ^ i as u64);
    }
    steps1024!(x, 0);
    steps512!(x, 2);
    steps256!(x, 6);
    x.iter().fold(0, |acc, lane| acc ^ lane)
}
