// One request as the client saw it, and the latencies derived from it.
//
// Times are nanoseconds of the client's monotonic clock (steady_clock) since
// the start of the run phase, taken in the stream's read callback as each
// response arrives, before the response is looked at.
//
// Counting tokens: a chunk may carry several token ids (the server batches
// what it has when the client is slow to read). Its tokens all arrive at the
// chunk's time. TTFT is the arrival of the first chunk with a token. The
// inter-token latencies are taken from every later chunk: a chunk with k
// tokens that arrives g after the previous token-carrying chunk contributes k
// samples of g / k (so the samples of a request add up to last arrival minus
// first arrival). The extra tokens of the first chunk contribute none.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace muserve::loadgen {

struct ChunkArrival {
  int64_t time_ns = 0;
  int32_t num_tokens = 0;  // >= 1: chunks without token ids are not recorded
};

struct RequestRecord {
  int64_t conversation = 0;  // conversation instance, unique within the phase
  int32_t turn = 0;          // 0-based
  int32_t target = 0;        // index into the run's targets
  // When the driver meant to send it: an open loop's drawn arrival time, or
  // a reply's arrival plus the think time (a closed loop's new conversation:
  // when its place came free, or after a back-off). start_ns - scheduled_ns
  // is the send lag: time the client, not the server, added (a driver
  // falling behind its schedule understates an open loop's latencies).
  int64_t scheduled_ns = 0;
  int64_t start_ns = 0;              // just before the call started
  int64_t end_ns = 0;                // when the call ended (its status arrived)
  std::vector<ChunkArrival> chunks;  // in arrival order
  int status_code = 0;               // grpc::StatusCode (0 = OK)
  std::string error_message;
  bool finished = false;  // the stream's Finished event arrived
  // Cancelled by the bench at the end of the phase (see PhaseOptions) before
  // it succeeded: neither a success nor a server error.
  bool cancelled = false;
  int32_t prompt_tokens = 0;
  int32_t completion_tokens = 0;
  int32_t cached_prompt_tokens = 0;

  // OK status with a Finished event.
  bool succeeded() const { return status_code == 0 && finished; }
};

struct RequestLatencies {
  std::optional<double> ttft_ms;  // none without any token
  std::vector<double> itl_ms;     // see the header comment
  // (last token's arrival - first token's) / (output tokens - 1), with >= 2
  // tokens: the status and Finished event after the last token do not count
  // (as vLLM's benchmark measures it).
  std::optional<double> tpot_ms;
  double e2e_ms = 0;
  int64_t output_tokens = 0;  // token ids received
};

RequestLatencies Measure(const RequestRecord& record);

}  // namespace muserve::loadgen
