// TensorBoard event files written without TensorFlow or protobuf: `tensorboard --logdir DIR`
// reads the scalars a run logs (`cellgraph search/train --tensorboard DIR`).
//
// The format is TFRecord framing around serialized tensorflow.Event messages: per record the
// data's length (uint64, little endian), the masked CRC-32C of those 8 bytes, the data, and
// the masked CRC-32C of the data. The messages use four fields of Event (wall_time, step,
// file_version, summary; session_log to mark a resume) and two of Summary.Value (tag,
// simple_value), few enough to encode by hand in protobuf's wire format, so protobuf stays
// in exporters/onnx/.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

namespace cellgraph::viz {

// CRC-32C (Castagnoli, reflected, as TFRecord uses it): crc32c("123456789") = 0xE3069283.
uint32_t crc32c(const void* data, size_t size);
// TFRecord's masking: rotate right by 15 and add 0xa282ead8.
uint32_t masked_crc32c(const void* data, size_t size);

class EventFileWriter {
 public:
  // Creates `dir` (and parents) and a new file in it, events.out.tfevents.SECONDS.HOST.cellgraph
  // (a resumed run gets its own file), starting with the file_version event. Throws Error
  // naming the directory or file when it cannot.
  explicit EventFileWriter(const std::string& dir);
  ~EventFileWriter();
  EventFileWriter(const EventFileWriter&) = delete;
  EventFileWriter& operator=(const EventFileWriter&) = delete;

  // One event at `step` with a scalar per (tag, value); flushed at once, like metrics.jsonl.
  void scalars(int64_t step, const std::vector<std::pair<std::string, float>>& values);
  // A SessionLog START at `step`: TensorBoard then drops the events of earlier files at
  // later steps, which a run resumed from a checkpoint writes again.
  void session_start(int64_t step);

  const std::string& path() const { return path_; }

 private:
  void write_event(const std::string& event_fields);

  std::string path_;
  std::FILE* file_ = nullptr;
};

}  // namespace cellgraph::viz
