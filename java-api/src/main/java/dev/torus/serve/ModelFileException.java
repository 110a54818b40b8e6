package dev.torus.serve;

import dev.torus.TorusException;
import java.nio.file.Path;

/**
 * A model file that cannot be read or written: it breaks the safetensors format, does not
 * hold what the caller asked for, or the file system failed. The message starts with the
 * file's path and then names the problem (the tensor, the field, the expected and the
 * actual value). Unchecked.
 */
public class ModelFileException extends TorusException {
    private static final long serialVersionUID = 1L;

    /** The file; kept as text so that the exception stays serializable. */
    private final String file;

    /** {@code file}: the model file; {@code problem}: what is wrong with it. */
    public ModelFileException(Path file, String problem) {
        super(file + ": " + problem);
        this.file = String.valueOf(file);
    }

    /** As above, with the I/O or parser error that revealed the problem. */
    public ModelFileException(Path file, String problem, Throwable cause) {
        super(file + ": " + problem, cause);
        this.file = String.valueOf(file);
    }

    /** The model file's path, as given. */
    public Path file() {
        return Path.of(file);
    }
}
