//! `watchpost-capture-testsrc --port N [--width W --height H --fps F --key-int K --path /cam --h265 --bframes N]`:
//! a test RTSP camera in its own process (tests kill and restart it to simulate outages).

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mut s = watchpost_capture::testsrc::TestStream::default();
    let num = |n: &str, d: u32| arg(&args, n).and_then(|v| v.parse().ok()).unwrap_or(d);
    s.width = num("--width", s.width);
    s.height = num("--height", s.height);
    s.fps = num("--fps", s.fps);
    s.key_int = num("--key-int", s.key_int);
    s.bitrate_kbps = num("--bitrate-kbps", s.bitrate_kbps);
    s.h265 = args.iter().any(|a| a == "--h265");
    s.bframes = num("--bframes", 0);
    if let Some(p) = arg(&args, "--path") {
        s.path = p;
    }
    let count = num("--streams", 1);
    let streams: Vec<_> = (0..count)
        .map(|i| {
            let mut t = s.clone();
            if count > 1 {
                t.path = format!("{}{}", s.path, i);
            }
            t
        })
        .collect();
    let port = num("--port", 0) as u16;
    match watchpost_capture::testsrc::serve(port, &streams) {
        Ok(server) => {
            println!("listening {}", server.port);
            loop {
                std::thread::park();
            }
        }
        Err(e) => {
            eprintln!("testsrc: {e}");
            std::process::exit(69);
        }
    }
}
