// Process-level hooks installed at the first start(): SIGTERM/SIGINT (drain and leave a
// summary.json snapshot, then chain to the previous handler), fork (the child gets a session of its
// own) and exit (stop()).
#pragma once

namespace profilemate::collector {

// Idempotent. Caller holds g().control.
void install_hooks_once();

}  // namespace profilemate::collector
