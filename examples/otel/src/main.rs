//! `cargo run -p bubus-example-otel`: a checkout on a traced bus, exported to stdout.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (answer, spans) = bubus_example_otel::run(true)?;
    println!("\ncheckout: {answer}");
    println!("\nspan tree ({} spans):\n", spans.len());
    print!("{}", bubus_example_otel::render_tree(&spans));
    Ok(())
}
