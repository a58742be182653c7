fn main() {
    // .env first, while the process has one thread (see `load_dotenv`).
    gcupload::load_dotenv();
    let cli = gcupload::cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the tokio runtime starts");
    let code = runtime.block_on(gcupload::run(cli));
    // Drop the runtime before exiting so no task outlives its output.
    drop(runtime);
    std::process::exit(code);
}
