package dev.torus.cli.launch;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The launcher's private files and its stuck-worker check, on real files and a real process. */
class LauncherHygieneTest {

    @Test
    void aFolderOpenToOthersOrALinkIsRefusedAndAFreshOneIsPrivate(@TempDir Path tmp) throws IOException {
        Path fresh = PrivateFiles.ensurePrivate(tmp.resolve("fresh"));
        assertEquals("rwx------", PosixFilePermissions.toString(Files.getPosixFilePermissions(fresh)));
        Path open = Files.createDirectory(tmp.resolve("open"));
        Files.setPosixFilePermissions(open, PosixFilePermissions.fromString("rwxrwxrwx"));
        IOException e = assertThrows(IOException.class, () -> PrivateFiles.ensurePrivate(open));
        assertTrue(e.getMessage().contains("rwxrwxrwx") && e.getMessage().contains("chmod 700"), e.getMessage());
        Path link = Files.createSymbolicLink(tmp.resolve("link"), fresh);
        e = assertThrows(IOException.class, () -> PrivateFiles.ensurePrivate(link));
        assertTrue(e.getMessage().contains("symbolic link"), e.getMessage());
        Path file = Files.writeString(tmp.resolve("file"), "x");
        assertThrows(IOException.class, () -> PrivateFiles.ensurePrivate(file));
    }

    @Test
    void aNewFileNeverReplacesAFileOrFollowsALink(@TempDir Path tmp) throws IOException {
        Path victim = Files.writeString(tmp.resolve("victim"), "keep");
        Files.createSymbolicLink(tmp.resolve("report.json"), victim);
        Files.writeString(tmp.resolve("report-2.json"), "older");
        Path f = PrivateFiles.writeNew(tmp, "report", ".json", "new");
        assertEquals(tmp.resolve("report-3.json"), f);
        assertEquals("new", Files.readString(f));
        assertEquals("keep", Files.readString(victim));
        assertEquals("older", Files.readString(tmp.resolve("report-2.json")));
        // a dangling link is not followed either
        Files.createSymbolicLink(tmp.resolve("dangling.json"), tmp.resolve("nowhere"));
        PrivateFiles.writeNew(tmp, "dangling", ".json", "x");
        assertTrue(Files.notExists(tmp.resolve("nowhere")));
    }

    @Test
    void aStaleHeartbeatMarksARunningWorkerStuckAndAFreshOneDoesNot(@TempDir Path tmp) throws Exception {
        WorkerProcess w = new WorkerProcess(0, 0, List.of("sleep", "30"), Map.of(), (r, err, line) -> { });
        try {
            Path hb = tmp.resolve("rank-0");
            assertNull(w.stuckReason(Duration.ofSeconds(1), hb), "no heartbeat file: not judged by heartbeat");
            Files.writeString(hb, "");
            assertNull(w.stuckReason(Duration.ofSeconds(1), hb));
            Files.setLastModifiedTime(hb, FileTime.fromMillis(System.currentTimeMillis() - 5_000));
            String why = w.stuckReason(Duration.ofSeconds(1), hb);
            assertTrue(why != null && why.contains("no heartbeat for 5 s"), why);
        } finally {
            w.kill();
        }
        assertTrue(!w.isAlive());
    }
}
