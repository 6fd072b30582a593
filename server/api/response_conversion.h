// The engine's output (Delta, Finished) to the public API's response stream
// (Chunk, Finished), and the finish-reason labels metrics and logs share.
// Thread-safe: pure functions.
#pragma once

#include <string_view>

#include "muserve/v1/inference.pb.h"
#include "scheduler/request.h"
#include "server/api/request_conversion.h"

namespace muserve::server {

// Appends `delta` to `chunk`: its text, its token ids (when
// shape.include_token_ids) and its logprobs (one per token, when the request
// asked for them; each carries its token id whatever the shape). Appending
// lets a non-streaming call (shape.stream false) gather the whole output in
// one chunk; a streaming call passes a fresh chunk per delta.
void DeltaToChunk(const Delta& delta, const StreamShape& shape, v1::Chunk* chunk);

// Overwrites `out`. kEos, kStopToken and kStopString are FINISH_REASON_STOP
// with the StopMatch (eos_token_id, stop_token_id, stop_string); kLength is
// LENGTH, kAborted CANCELLED, kDeadline DEADLINE. Timings are microseconds
// since arrival: queue to the first scheduled step (0 if never scheduled),
// time to first token (0 if none), total to the end.
void FinishedToProto(const Finished& finished, v1::Finished* out);

v1::FinishReason FinishReasonToProto(FinishReason reason);

// "stop", "length", "cancelled" or "deadline": the proto's reason, as metrics
// labels and logs name it.
std::string_view FinishReasonLabel(FinishReason reason);

}  // namespace muserve::server
