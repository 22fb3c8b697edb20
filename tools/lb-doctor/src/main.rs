fn main() -> std::process::ExitCode {
    lb_common::exit::main(lb_doctor::run)
}
