# A derivation only a Linux builder can build here (the host runs no Linux
# builds itself: --max-jobs 0). `stamp` makes each demo run build anew.
{ stamp ? "0", system ? "x86_64-linux" }:
derivation {
  name = "builder-uname";
  inherit system stamp;
  builder = "/bin/sh";
  args = [ "-c" "echo \"built on $(uname -n): $(uname -srm) (run ${stamp})\" > $out" ];
}
