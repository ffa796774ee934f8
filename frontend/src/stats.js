// The call quality summary the page reports after a call: WebRTC getStats() boiled down to the
// numbers the server stores with the call record (POST /api/v1/webphone/quality).

function number(value) {
  return typeof value === "number" && Number.isFinite(value) ? value : null;
}

function round(value, digits) {
  if (value == null) {
    return null;
  }
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

/**
 * An RTCStatsReport (a Map of stats objects) → {rtt_ms, jitter_ms, packets_lost, packets_received,
 * packets_sent, total_audio_energy, codec}; a field is null when the browser did not report it.
 */
export function summarize(report) {
  const byId = new Map();
  report.forEach((stat) => byId.set(stat.id, stat));
  let outbound = null;
  let inbound = null;
  let pair = null;
  let transport = null;
  for (const stat of byId.values()) {
    if (stat.type === "outbound-rtp" && stat.kind === "audio" && !stat.isRemote) {
      outbound = stat;
    } else if (stat.type === "inbound-rtp" && stat.kind === "audio" && !stat.isRemote) {
      inbound = stat;
    } else if (stat.type === "transport") {
      transport = stat;
    } else if (stat.type === "candidate-pair" && (stat.nominated || stat.selected) && stat.state === "succeeded") {
      pair = stat;
    }
  }
  // Chromium names the selected pair on the transport; Firefox marks it `selected`.
  if (transport && transport.selectedCandidatePairId && byId.has(transport.selectedCandidatePairId)) {
    pair = byId.get(transport.selectedCandidatePairId);
  }
  let rtt = pair ? number(pair.currentRoundTripTime) : null;
  if (rtt == null) {
    // Firefox reports no currentRoundTripTime: the RTCP-based remote-inbound-rtp has it.
    for (const stat of byId.values()) {
      if (stat.type === "remote-inbound-rtp" && stat.kind === "audio" && number(stat.roundTripTime) != null) {
        rtt = stat.roundTripTime;
      }
    }
  }
  const codecStat = (inbound && byId.get(inbound.codecId)) || (outbound && byId.get(outbound.codecId)) || null;
  const jitter = inbound ? number(inbound.jitter) : null;
  return {
    rtt_ms: rtt == null ? null : round(rtt * 1000, 1),
    jitter_ms: jitter == null ? null : round(jitter * 1000, 1),
    packets_lost: inbound ? number(inbound.packetsLost) : null,
    packets_received: inbound ? number(inbound.packetsReceived) : null,
    packets_sent: outbound ? number(outbound.packetsSent) : null,
    total_audio_energy: inbound ? round(number(inbound.totalAudioEnergy), 6) : null,
    codec: codecStat && typeof codecStat.mimeType === "string" ? codecStat.mimeType : null,
  };
}
