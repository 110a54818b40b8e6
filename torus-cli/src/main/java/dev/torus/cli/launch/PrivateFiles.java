package dev.torus.cli.launch;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFileAttributes;
import java.nio.file.attribute.PosixFilePermission;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Set;

/**
 * Files the launcher writes where other users could plant things (the system temp
 * directory): a per-user directory created with mode 0700 and checked on every use
 * (a real directory, not a link, owned by this user, closed to group and others), and
 * files created only if absent, never through a symbolic link.
 */
final class PrivateFiles {
    private PrivateFiles() {}

    /** {@code <java.io.tmpdir>/torusrun-<user>}, created or checked as described above. */
    static Path userDirectory() throws IOException {
        String user = System.getProperty("user.name", "unknown").replaceAll("[^A-Za-z0-9._-]", "_");
        return ensurePrivate(Path.of(System.getProperty("java.io.tmpdir"), "torusrun-" + user));
    }

    /** Creates {@code dir} with mode 0700 if it is absent; refuses one that is not private to this user. */
    static Path ensurePrivate(Path dir) throws IOException {
        try {
            Files.createDirectory(dir, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwx------")));
        } catch (FileAlreadyExistsException exists) {
            // checked below, without following a link
        }
        PosixFileAttributes a = Files.readAttributes(dir, PosixFileAttributes.class, LinkOption.NOFOLLOW_LINKS);
        String who = System.getProperty("user.name");
        if (a.isSymbolicLink() || !a.isDirectory()) {
            throw new IOException("refusing to use " + dir + ": it is " + (a.isSymbolicLink() ? "a symbolic link" : "not a directory")
                    + "; the launcher writes only into a directory private to its user (remove it, or pass --error-dir)");
        }
        if (!a.owner().getName().equals(who)) {
            throw new IOException("refusing to use " + dir + ": it belongs to " + a.owner().getName() + ", not " + who
                    + " (pass --error-dir)");
        }
        Set<PosixFilePermission> p = a.permissions();
        for (PosixFilePermission open : new PosixFilePermission[] {PosixFilePermission.GROUP_WRITE,
                PosixFilePermission.OTHERS_WRITE, PosixFilePermission.GROUP_READ, PosixFilePermission.OTHERS_READ,
                PosixFilePermission.GROUP_EXECUTE, PosixFilePermission.OTHERS_EXECUTE}) {
            if (p.contains(open)) {
                throw new IOException("refusing to use " + dir + ": its mode is " + PosixFilePermissions.toString(p)
                        + ", open to other users; expected rwx------ (chmod 700 it, or pass --error-dir)");
            }
        }
        return dir;
    }

    /** Deletes a folder of plain files (no subfolders), then the folder. */
    static void deleteFlat(Path dir) throws IOException {
        try (var files = Files.list(dir)) {
            for (Path f : files.toList()) {
                Files.deleteIfExists(f);
            }
        }
        Files.deleteIfExists(dir);
    }

    /** Deletes the heartbeat folders ({@code hb-<launcher pid>-...}) of launchers that no longer run. */
    static void sweepHeartbeatDirs(Path userDir) {
        try (var dirs = Files.list(userDir)) {
            for (Path d : dirs.toList()) {
                String name = d.getFileName().toString();
                if (!name.startsWith("hb-") || !Files.isDirectory(d, LinkOption.NOFOLLOW_LINKS)) {
                    continue;
                }
                long pid;
                try {
                    pid = Long.parseLong(name.substring(3, name.indexOf('-', 3)));
                } catch (RuntimeException e) {
                    continue; // an older name: not ours to judge
                }
                if (ProcessHandle.of(pid).isPresent()) {
                    continue;
                }
                deleteFlat(d);
            }
        } catch (IOException | RuntimeException e) {
            // leftovers are harmless
        }
    }

    /**
     * Writes {@code text} to a new file {@code name} in {@code dir}; if that name exists (a
     * file, or a link planted in its place) it takes {@code name-2}, {@code name-3}, ...
     * The file is never opened through a link and never overwritten. Returns its path.
     */
    static Path writeNew(Path dir, String name, String suffix, String text) throws IOException {
        for (int i = 1; i <= 100; i++) {
            Path f = dir.resolve(i == 1 ? name + suffix : name + "-" + i + suffix);
            try (OutputStream out = Files.newOutputStream(f, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE,
                    LinkOption.NOFOLLOW_LINKS)) {
                out.write(text.getBytes(StandardCharsets.UTF_8));
                return f;
            } catch (FileAlreadyExistsException taken) {
                // try the next name
            }
        }
        throw new IOException("could not create a new file named " + name + "*" + suffix + " in " + dir
                + ": 100 names are taken");
    }
}
