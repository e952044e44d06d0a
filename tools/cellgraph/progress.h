// Progress reporting for long commands (search, train) and Ctrl-C handling.
//
// On a terminal, one status line on stderr is redrawn in place after every step; other
// output (epoch summaries, notes) is printed above it. Elsewhere (a log file, a pipe) the
// commands print plain lines at their log interval instead, and update() does nothing.
//
// Ctrl-C (SIGINT) and SIGTERM (kill, a batch scheduler's time limit): the handler only
// records the signal (async-signal-safe); the loop polls interrupted() after each step,
// checkpoints and exits with status 128 + the signal (130, 143), the shell convention. The
// handler is one-shot: a second signal kills the process the default way.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace cellgraph::tools {

void install_interrupt_handler();
bool interrupted();
// 128 + the signal that interrupted the run (130 for Ctrl-C, 143 for SIGTERM).
int interrupted_exit_status();

struct ProgressState {
  int64_t epoch = 0, epochs = 0;                   // 0-based epoch of the last step
  int64_t step_in_epoch = 0, steps_per_epoch = 0;  // steps done in that epoch
  int64_t step = 0, total_steps = 0;               // global steps done / planned
  double loss = 0, accuracy = 0;                   // running means of the epoch (train)
};

class Progress {
 public:
  Progress();  // decides terminal mode from isatty(stderr)
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  bool terminal() const { return terminal_; }
  // Call after each step: times the steps (moving average) and redraws the bar.
  void update(const ProgressState& state);
  // Prints a whole line on stderr (above the bar on a terminal).
  void line(const std::string& text);
  // Ends the bar's line so that later output starts on a fresh one.
  void finish();
  double seconds_per_step() const { return seconds_per_step_; }

 private:
  bool terminal_;
  bool bar_shown_ = false;
  std::string last_bar_;
  double seconds_per_step_ = 0;
  std::chrono::steady_clock::time_point last_;
};

// "1:02:03" / "2:03"
std::string format_duration(double seconds);

}  // namespace cellgraph::tools
