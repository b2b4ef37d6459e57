//! Throughput benchmark of simple authenticated GETs.

fn main() {}
