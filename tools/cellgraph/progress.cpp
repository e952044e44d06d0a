#include "tools/cellgraph/progress.h"

#include <unistd.h>

#include <cmath>
#include <csignal>
#include <cstdio>
#include <iostream>

namespace cellgraph::tools {

namespace {
volatile std::sig_atomic_t g_signal = 0;  // the first signal received, 0: none

extern "C" void on_interrupt(int signal) {
  if (g_signal == 0) g_signal = signal;
}
}  // namespace

void install_interrupt_handler() {
  struct sigaction action {};
  action.sa_handler = on_interrupt;
  sigemptyset(&action.sa_mask);
  // One-shot: a second signal while we finish the step and checkpoint kills at once.
  action.sa_flags = SA_RESETHAND;
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

bool interrupted() { return g_signal != 0; }

int interrupted_exit_status() { return 128 + (g_signal != 0 ? int(g_signal) : SIGINT); }

std::string format_duration(double seconds) {
  if (!(seconds >= 0) || seconds > 1e8) return "?";
  const int64_t s = std::lround(seconds);
  char buffer[32];
  if (s >= 3600)
    std::snprintf(buffer, sizeof buffer, "%lld:%02lld:%02lld", (long long)(s / 3600),
                  (long long)(s / 60 % 60), (long long)(s % 60));
  else
    std::snprintf(buffer, sizeof buffer, "%lld:%02lld", (long long)(s / 60), (long long)(s % 60));
  return buffer;
}

Progress::Progress() : terminal_(::isatty(STDERR_FILENO) == 1) {
  last_ = std::chrono::steady_clock::now();
}

Progress::~Progress() { finish(); }

void Progress::update(const ProgressState& s) {
  const auto now = std::chrono::steady_clock::now();
  const double dt = std::chrono::duration<double>(now - last_).count();
  last_ = now;
  // An exponential average settles within ~10 steps and follows slowdowns.
  seconds_per_step_ = seconds_per_step_ == 0 ? dt : 0.9 * seconds_per_step_ + 0.1 * dt;
  if (!terminal_) return;
  constexpr int kWidth = 20;
  const int filled = s.steps_per_epoch > 0 ? int(kWidth * s.step_in_epoch / s.steps_per_epoch) : 0;
  const std::string bar =
      std::string(size_t(filled), '#') + std::string(size_t(kWidth - filled), '.');
  const double eta = double(s.total_steps - s.step) * seconds_per_step_;
  char text[256];
  std::snprintf(text, sizeof text,
                "epoch %lld/%lld [%s] %lld/%lld  loss %.4f  acc %.1f%%  %.3f s/step  ETA %s",
                (long long)s.epoch + 1, (long long)s.epochs, bar.c_str(),
                (long long)s.step_in_epoch, (long long)s.steps_per_epoch, s.loss,
                100.0 * s.accuracy, seconds_per_step_, format_duration(eta).c_str());
  last_bar_ = text;
  std::cerr << "\r\033[K" << last_bar_ << std::flush;
  bar_shown_ = true;
}

void Progress::line(const std::string& text) {
  if (bar_shown_) std::cerr << "\r\033[K";
  std::cerr << text << "\n";
  if (bar_shown_) std::cerr << last_bar_;
  std::cerr << std::flush;
}

void Progress::finish() {
  if (!bar_shown_) return;
  std::cerr << "\n" << std::flush;
  bar_shown_ = false;
}

}  // namespace cellgraph::tools
