//! Fuzzing every parser: arbitrary bytes and mutated valid files must give `Ok` or an error, never a panic.
//!
//! Two modes:
//! - in the normal test run, proptest feeds each parser arbitrary bytes and mutations of valid files;
//! - `DUET_FUZZ_SECS=600 cargo test --release -p duet-traces --test fuzz -- --ignored --nocapture fuzz_long`
//!   runs a mutation fuzzer on every parser for that many seconds each (one thread per parser) and prints the
//!   executions per parser; any panic fails the test and prints the input.

use std::io::Cursor;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::time::{Duration, Instant};

use duet_traces::burstgpt::BurstFilter;
use duet_traces::{azure, burstgpt, canonical, mooncake, vidur};
use proptest::prelude::*;

type Parser = fn(&[u8]);

fn parsers() -> Vec<(&'static str, Parser, &'static str)> {
    let list: Vec<(&'static str, Parser, &'static str)> = vec![
        (
            "azure",
            |b| drop(azure::read(Path::new("fuzz"), Cursor::new(b))),
            "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.6805900,374,44\n2024-05-10 00:00:00.009930+00:00,396,109\n",
        ),
        (
            "mooncake",
            |b| drop(mooncake::read(Path::new("fuzz"), Cursor::new(b))),
            "{\"timestamp\": 0, \"input_length\": 6758, \"output_length\": 500, \"hash_ids\": [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]}\n{\"timestamp\": 3000, \"input_length\": 600, \"output_length\": 5, \"hash_ids\": [0, 14]}\n",
        ),
        (
            "burstgpt",
            |b| drop(burstgpt::read(Path::new("fuzz"), Cursor::new(b), &BurstFilter::default())),
            "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n5,ChatGPT,472,18,490,Conversation log\n45,ChatGPT,1087,0,1087,Conversation log\n118.5,GPT-4,417,276,693,API log\n",
        ),
        (
            "vidur",
            |b| drop(vidur::read_timed(Path::new("fuzz"), Cursor::new(b))),
            "arrived_at,num_prefill_tokens,num_decode_tokens\n0.0,100,10\n1.25e-3,200,20\n",
        ),
        (
            "lengths",
            |b| drop(vidur::read_lengths(Path::new("fuzz"), Cursor::new(b))),
            "num_prefill_tokens,num_decode_tokens,num_total_tokens,pd_ratio\n74,918,992,0.0806100217864923\n290,905,1195,0.3204419889502762\n",
        ),
        (
            "canonical-csv",
            |b| drop(canonical::read_csv(Path::new("fuzz"), Cursor::new(b))),
            "arrival_ns,input_tokens,output_tokens,prefix_block_tokens,hash_ids\n0,600,3,512,4 9\n1500000007,10,1,512,4\n",
        ),
        (
            "canonical-jsonl",
            |b| drop(canonical::read_jsonl(Path::new("fuzz"), Cursor::new(b))),
            "{\"arrival_ns\":0,\"input_tokens\":600,\"output_tokens\":3,\"prefix_block_tokens\":512,\"hash_ids\":[4,9]}\n{\"arrival_ns\":5,\"input_tokens\":10,\"output_tokens\":1,\"prefix_block_tokens\":512,\"hash_ids\":[4]}\n",
        ),
    ];
    list
}

/// Bytes that matter to the parsers.
const INTERESTING: &[&[u8]] = &[
    b",",
    b"\n",
    b"\r\n",
    b"\"",
    b"-",
    b".",
    b"e",
    b"E",
    b":",
    b" ",
    b"{",
    b"}",
    b"[",
    b"]",
    b"0",
    b"9",
    b"+00:00",
    b"Z",
    b"\xef\xbb\xbf",
    b"\xff",
    b"99999999999999999999999",
    b"-1",
    b"1e308",
    b"NaN",
    b"null",
    b"true",
    b"\"hash_ids\": []",
];

/// xorshift64*: a tiny seeded generator for the long fuzzer.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Applies 1 to 8 random edits to `seed`.
fn mutate(seed: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..1 + rng.below(8) {
        // Most edits land after the header line, so that the row parsers (not only the header check) are hit.
        let body = v.iter().position(|&b| b == b'\n').map_or(0, |i| i + 1);
        let pos = if rng.below(5) == 0 { rng.below(v.len() + 1) } else { body + rng.below(v.len() - body + 1) };
        match rng.below(6) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = rng.next() as u8;
            }
            1 => {
                let ins = INTERESTING[rng.below(INTERESTING.len())];
                v.splice(pos..pos, ins.iter().copied());
            }
            2 if !v.is_empty() => {
                let end = (pos + 1 + rng.below(16)).min(v.len());
                v.drain(pos.min(end)..end);
            }
            3 => {
                // Duplicate a random slice (lines, fields) somewhere else.
                let a = rng.below(v.len() + 1);
                let b = (a + rng.below(64)).min(v.len());
                let chunk = v[a..b].to_vec();
                v.splice(pos..pos, chunk);
            }
            4 => v.truncate(pos),
            _ => {
                let d = (b'0' + rng.below(10) as u8) as char;
                v.splice(pos..pos, d.to_string().repeat(1 + rng.below(24)).into_bytes());
            }
        }
    }
    v
}

fn must_not_panic(name: &str, f: Parser, input: &[u8]) {
    if catch_unwind(AssertUnwindSafe(|| f(input))).is_err() {
        panic!("{name} panicked on input {:?}", String::from_utf8_lossy(input));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        for (name, f, _) in parsers() {
            must_not_panic(name, f, &bytes);
        }
    }

    #[test]
    fn mutated_valid_files_never_panic(seed in any::<u64>()) {
        let mut rng = Rng(seed | 1);
        for (name, f, sample) in parsers() {
            must_not_panic(name, f, &mutate(sample.as_bytes(), &mut rng));
        }
    }
}

#[test]
#[ignore = "long-running fuzzer; set DUET_FUZZ_SECS and run with --ignored"]
fn fuzz_long() {
    let secs: u64 = std::env::var("DUET_FUZZ_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
    let handles: Vec<_> = parsers()
        .into_iter()
        .enumerate()
        .map(|(k, (name, f, sample))| {
            std::thread::spawn(move || {
                let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (k as u64 + 1));
                let (start, mut execs, mut corpus) = (Instant::now(), 0u64, vec![sample.as_bytes().to_vec()]);
                while start.elapsed() < Duration::from_secs(secs) {
                    let base = corpus[rng.below(corpus.len())].clone();
                    let input = mutate(&base, &mut rng);
                    must_not_panic(name, f, &input);
                    execs += 1;
                    // Keep some mutants as seeds so edits compound (a crude corpus without coverage feedback).
                    if corpus.len() < 256 && rng.below(64) == 0 {
                        corpus.push(input);
                    }
                }
                (name, execs)
            })
        })
        .collect();
    for h in handles {
        let (name, execs) = h.join().expect("a fuzz thread panicked");
        println!("fuzz {name}: {execs} executions in {secs} s, 0 panics");
    }
}
