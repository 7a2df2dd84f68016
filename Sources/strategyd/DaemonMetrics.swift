import CoreMetrics
import Engine
import Foundation
import PluginHost
import Prometheus

/// The daemon's metrics: swift-metrics instruments with swift-prometheus as their backend,
/// read as Prometheus text through the `metrics` method (strategyctl metrics). Counters move
/// as things happen (refusals by cap where RPCError.limitExceeded makes them); the gauges
/// are read when the text is asked for.
final class DaemonMetrics: Sendable {
    private let registry = PrometheusCollectorRegistry()

    /// Bootstraps swift-metrics with this daemon's registry: once per process.
    init() {
        var factory = PrometheusMetricsFactory(registry: registry)
        // A solve takes a fraction of a second on the test model and up to the hour a sweep
        // allows on the default one.
        factory.defaultDurationHistogramBuckets = [0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600]
            .map { Duration.milliseconds(Int64($0 * 1000)) }
        MetricsSystem.bootstrap(factory)
    }

    /// A solve answered (outcome ok, stopped by a budget, cancelled, or failed), with its own compute.
    func solved(strategy: String, outcome: SolveOutcome, usage: Usage?, seconds: Double) {
        let name: String
        switch outcome {
        case .success(let result): name = result["budget_exhausted"] == true ? "stopped" : "ok"
        case .cancelled: name = "cancelled"
        default: name = "failed"
        }
        Counter(label: "strategyd_solves_total", dimensions: [("strategy", strategy), ("outcome", name)]).increment()
        Timer(label: "strategyd_solve_duration_seconds", dimensions: [("strategy", strategy)])
            .recordNanoseconds(Int64(seconds * 1e9))
        guard let usage else { return }
        for (kind, count) in [("prompt", usage.promptTokens), ("generated", usage.generatedTokens),
                              ("thought", usage.thoughtTokens), ("scorer", usage.scorerTokens)] where count > 0 {
            Counter(label: "strategyd_tokens_total", dimensions: [("kind", kind)]).increment(by: count)
        }
        FloatingPointCounter(label: "strategyd_flops_total").increment(by: usage.flops)
        FloatingPointCounter(label: "strategyd_executed_flops_total").increment(by: usage.executedFlops)
        if usage.cachedTokens > 0 {
            Counter(label: "strategyd_prompt_cache_hits_total").increment()
            Counter(label: "strategyd_prompt_cache_tokens_total").increment(by: usage.cachedTokens)
        }
    }

    /// A plugin loaded (`event`: load, reload, unload, refused).
    func plugin(_ name: String, event: String) {
        Counter(label: "strategyd_plugin_events_total", dimensions: [("plugin", name), ("event", event)]).increment()
    }

    /// Prometheus text, with the gauges read now.
    func text(solvesRunning: Int, solvesQueued: Int, liveSequences: Int, cellsInUse: Int, connections: Int) -> String {
        for (label, value) in [("strategyd_solves_running", solvesRunning), ("strategyd_solves_queued", solvesQueued),
                               ("strategyd_live_sequences", liveSequences), ("strategyd_kv_cells_in_use", cellsInUse),
                               ("strategyd_connections_open", connections)] {
            Gauge(label: label).record(value)
        }
        return registry.emitToString()
    }
}
