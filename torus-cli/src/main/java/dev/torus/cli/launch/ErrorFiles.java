package dev.torus.cli.launch;

import dev.torus.cli.Json;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Writes one JSON error file per failed worker (rank, exit code or signal, pid, why it counts as
 * stuck, the command, the tail of its stderr) into the chosen folder, or the private per-user
 * folder, never through a link; and echoes the failure and the last stderr lines to the log.
 */
final class ErrorFiles {
    private final Path errorDir;
    private final PrintStream log;
    private Path fallback;

    ErrorFiles(Path errorDir, PrintStream log) {
        this.errorDir = errorDir;
        this.log = log;
    }

    /** Writes the file for {@code w} (which has exited) and returns it. */
    Path write(WorkerProcess w, String runId, int attempt, String stuckReason, List<String> command) throws IOException {
        int code = w.exitCode();
        Map<String, Object> o = new LinkedHashMap<>();
        o.put("rank", w.rank);
        o.put("local_rank", w.localRank);
        o.put("run_id", runId);
        o.put("attempt", attempt);
        o.put("exit_code", code);
        if (code > 128) {
            o.put("signal", code - 128);
        }
        o.put("pid", w.pid());
        if (stuckReason != null) {
            o.put("stuck", stuckReason);
        }
        o.put("time", Instant.now().toString());
        o.put("command", command);
        o.put("stderr_tail", w.stderrTail());
        Path dir;
        if (errorDir != null) {
            dir = Files.createDirectories(errorDir);
        } else {
            try {
                dir = PrivateFiles.userDirectory();
            } catch (IOException refused) {
                // another user may hold that name in a shared temp directory: the report still gets written
                dir = fallbackDir();
                log.println("torusrun: " + refused.getMessage() + "; error files go to " + dir + " instead");
            }
        }
        Path f = PrivateFiles.writeNew(dir, "error-" + runId + "-attempt" + attempt + "-rank" + w.rank, ".json",
                Json.write(o) + "\n");
        String who = w.rank >= 0 ? "rank " + w.rank : "local worker " + w.localRank;
        log.println("torusrun: " + who + " (pid " + w.pid() + ") exited with code " + code + "; error file " + f);
        List<String> tail = w.stderrTail();
        for (String line : tail.subList(Math.max(0, tail.size() - 5), tail.size())) {
            log.println("torusrun:   [" + (w.rank >= 0 ? w.rank : "l" + w.localRank) + "] " + line);
        }
        return f;
    }

    private synchronized Path fallbackDir() throws IOException {
        if (fallback == null) {
            fallback = Files.createTempDirectory("torusrun-errors-" + ProcessHandle.current().pid() + "-");
        }
        return fallback;
    }
}
