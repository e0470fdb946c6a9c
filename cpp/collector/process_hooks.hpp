// Process-level hooks installed at the first start(): SIGTERM/SIGINT (drain and leave a
// summary.json snapshot, then chain to the previous handler; an ignored signal is left alone),
// fork (the child handler only resets state; the child's own session starts on its first event or
// relabel()) and exit (stop()).
#pragma once

namespace profilemate::collector {

// Idempotent. Caller holds g().control.
void install_hooks_once();

}  // namespace profilemate::collector
