fn main() -> std::process::ExitCode {
    gcupload::app::main()
}
