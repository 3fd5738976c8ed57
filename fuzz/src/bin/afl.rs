//! The afl++ entry point: `ringcast-afl TARGET` fuzzes one target (handshake, frames, close,
//! push) in afl's persistent mode. Built only by `cargo afl build -p ringcast-fuzz --features
//! afl`; `fuzz/README.md` has the whole run.

use ringcast_fuzz::alloc::CountingAlloc;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn main() {
    let name = std::env::args().nth(1).unwrap_or_default();
    let Some(target) = ringcast_fuzz::target(&name) else {
        let names: Vec<&str> = ringcast_fuzz::TARGETS.iter().map(|t| t.name).collect();
        eprintln!("usage: ringcast-afl TARGET (one of {})", names.join(", "));
        std::process::exit(2);
    };
    afl::fuzz!(|data: &[u8]| {
        ringcast_fuzz::check(target, data);
    });
}
