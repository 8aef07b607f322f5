//! Generates the `echo` service's messages, client and server from `proto/echo.proto`
//! with the `protoc` that `protoc-bin-vendored` ships, so no system `protoc` is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure().compile_with_config(
        config,
        &["proto/echo.proto"],
        &["proto"],
    )?;
    println!("cargo:rerun-if-changed=proto/echo.proto");
    Ok(())
}
