fn main() {
    std::process::exit(opsi_backup::cli::main());
}
