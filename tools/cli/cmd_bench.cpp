// vila bench: placeholder until the benchmark lands in this session.
#include "cli_common.h"

namespace vila::cli {
void add_bench_command(CLI::App& app, int& exit_code) {
  CLI::App* cmd = app.add_subcommand("bench", "Benchmark prefill and decode");
  cmd->callback([&exit_code] { exit_code = report_error(unimplemented("bench")); });
}
}  // namespace vila::cli
