package dev.torus.serve;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonGenerator;
import com.fasterxml.jackson.core.StreamReadConstraints;
import dev.torus.DType;
import dev.torus.memory.HostBuffer;
import dev.torus.tensor.Tensor;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ThreadLocalRandom;

/**
 * Writes and opens model files in the safetensors layout, which the Python
 * {@code safetensors} package and PyTorch read: an 8-byte little-endian unsigned header
 * length {@code N}, then {@code N} bytes of UTF-8 JSON, then the tensors' bytes. The header
 * maps each tensor name to {@code {"dtype", "shape", "data_offsets": [begin, end]}} (offsets
 * relative to the start of the data, elements little-endian and row-major), plus an optional
 * {@code "__metadata__"} object of strings.
 *
 * <p>What {@link #write} produces is what the reference writer produces: the header is padded
 * with spaces to a multiple of 8 bytes, the tensors lie back to back without gaps, and the data
 * is ordered by element size (largest first) so that every tensor starts at a multiple of its
 * element size. The header lists the tensors in the map's iteration order, and
 * {@link SafeTensorsFile#names()} gives them back in that order.
 *
 * <p>Type names: {@code F32, F16, BF16, F64, I8, U8, I32, I64} for {@link DType#FLOAT32},
 * {@code FLOAT16}, {@code BFLOAT16}, {@code FLOAT64}, {@code INT8}, {@code UINT8},
 * {@code INT32} and {@code INT64}. The other safetensors types (BOOL, U16, F8_E4M3, ...) have
 * no Torus dtype and are refused when read.
 *
 * <p>Static methods only; safe to call from any thread.
 */
public final class SafeTensors {
    /** The largest header written or read, in bytes: the reference implementation's limit. */
    public static final long MAX_HEADER_BYTES = 100_000_000L;

    static final String METADATA_KEY = "__metadata__";

    /** Header JSON; strings may be as long as the header itself (the default limit is 20 MB). */
    static final JsonFactory JSON = JsonFactory.builder()
            .streamReadConstraints(StreamReadConstraints.builder().maxStringLength((int) MAX_HEADER_BYTES).build())
            .build();

    private static final long CHUNK = 1L << 30;

    private SafeTensors() {
    }

    /**
     * Writes {@code tensors} and {@code metadata} to {@code file}, replacing it atomically: the
     * bytes go to a temporary file in the same directory, are forced to disk, and the temporary
     * file is then renamed to {@code file}, so a reader sees the old file or the whole new one.
     *
     * <p>The tensors must be open CPU tensors (any dtype, any shape including {@code []} and
     * empty ones); they are only read, and stay owned by the caller. Copy a CUDA tensor with
     * {@code to(Device.cpu())} first.
     *
     * @param file     the file to write
     * @param tensors  name to tensor; iteration order is the header's order; the name
     *                 {@code "__metadata__"} is reserved
     * @param metadata string to string, written as {@code "__metadata__"} in iteration order;
     *                 {@code null} or empty writes none
     * @throws IllegalArgumentException for a bad argument, named in the message
     * @throws IllegalStateException    when a tensor is closed
     * @throws ModelFileException       when the file system fails
     */
    public static void write(Path file, Map<String, Tensor> tensors, Map<String, String> metadata) {
        if (file == null) {
            throw new IllegalArgumentException("file must not be null");
        }
        if (tensors == null) {
            throw new IllegalArgumentException("tensors must not be null");
        }
        checkLittleEndian();
        List<String> names = new ArrayList<>(tensors.size());
        List<Tensor> values = new ArrayList<>(tensors.size());
        for (Map.Entry<String, Tensor> e : tensors.entrySet()) {
            String name = e.getKey();
            Tensor t = e.getValue();
            if (name == null) {
                throw new IllegalArgumentException("tensors: names must not be null");
            }
            if (name.equals(METADATA_KEY)) {
                throw new IllegalArgumentException("tensors: the name '" + METADATA_KEY
                        + "' is reserved for the metadata");
            }
            if (t == null) {
                throw new IllegalArgumentException("tensors['" + name + "'] must not be null");
            }
            if (t.isClosed()) {
                throw new IllegalStateException("tensors['" + name + "'] is closed: " + t);
            }
            if (!t.device().isCpu()) {
                throw new IllegalArgumentException("tensors['" + name + "']: expected a CPU tensor, got " + t
                        + "; copy it with to(Device.cpu()) first");
            }
            names.add(name);
            values.add(t);
        }
        if (metadata != null) {
            for (Map.Entry<String, String> e : metadata.entrySet()) {
                if (e.getKey() == null) {
                    throw new IllegalArgumentException("metadata: keys must not be null");
                }
                if (e.getValue() == null) {
                    throw new IllegalArgumentException("metadata['" + e.getKey() + "'] must not be null");
                }
            }
        }

        // data order: largest elements first, then the map's order, so every tensor is aligned to its element size
        int n = names.size();
        Integer[] order = new Integer[n];
        for (int i = 0; i < n; i++) {
            order[i] = i;
        }
        Arrays.sort(order, Comparator.comparingInt((Integer i) -> -values.get(i).dtype().byteSize()));
        long[] begin = new long[n];
        long offset = 0;
        for (int i : order) {
            begin[i] = offset;
            offset += values.get(i).byteSize();
        }
        byte[] header = header(names, values, begin, metadata);
        if (header.length > MAX_HEADER_BYTES) {
            throw new IllegalArgumentException("tensors and metadata: the header would take " + header.length
                    + " bytes, over the limit of " + MAX_HEADER_BYTES);
        }

        Path target = file.toAbsolutePath();
        Path tmp = target.resolveSibling("." + target.getFileName() + "."
                + Long.toHexString(ThreadLocalRandom.current().nextLong()) + ".tmp");
        try {
            // no explicit permissions: the file gets the usual ones (umask), like any other file the process writes
            try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
                ByteBuffer prefix = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(header.length).flip();
                writeFully(ch, prefix);
                writeFully(ch, ByteBuffer.wrap(header));
                for (int i : order) {
                    Tensor t = values.get(i);
                    long bytes = t.byteSize();
                    HostBuffer hb = (HostBuffer) t.buffer();
                    for (long off = 0; off < bytes; off += CHUNK) {
                        writeFully(ch, hb.view(off, Math.min(CHUNK, bytes - off)));
                    }
                }
                ch.force(true);
            }
            Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (IOException e) {
            deleteQuietly(tmp, e);
            throw new ModelFileException(file, "cannot write: " + e, e);
        } catch (RuntimeException | Error e) {
            deleteQuietly(tmp, e);
            throw e;
        }
    }

    /**
     * Opens {@code file} and checks its header (see {@link SafeTensorsFile} for what is
     * refused); the tensors' bytes are read later, by {@link SafeTensorsFile#tensor}. The
     * caller owns the result and closes it.
     *
     * @throws IllegalArgumentException when {@code file} is null
     * @throws ModelFileException       when the file cannot be read or breaks the format
     */
    public static SafeTensorsFile read(Path file) {
        if (file == null) {
            throw new IllegalArgumentException("file must not be null");
        }
        checkLittleEndian();
        return SafeTensorsFile.open(file);
    }

    /** The safetensors name of {@code dtype}. */
    static String dtypeName(DType dtype) {
        switch (dtype) {
            case FLOAT32:
                return "F32";
            case FLOAT16:
                return "F16";
            case BFLOAT16:
                return "BF16";
            case FLOAT64:
                return "F64";
            case INT8:
                return "I8";
            case UINT8:
                return "U8";
            case INT32:
                return "I32";
            case INT64:
                return "I64";
            default:
                throw new IllegalStateException("no safetensors name for " + dtype);
        }
    }

    /** The dtype with safetensors name {@code name}, or null when Torus has none. */
    static DType dtypeOf(String name) {
        for (DType d : DType.values()) {
            if (dtypeName(d).equals(name)) {
                return d;
            }
        }
        return null;
    }

    /** "FLOAT32 (F32) [2, 3]": a tensor's type and shape, for messages. */
    static String describe(DType dtype, long[] shape) {
        return dtype + " (" + dtypeName(dtype) + ") " + Arrays.toString(shape);
    }

    private static byte[] header(List<String> names, List<Tensor> values, long[] begin, Map<String, String> metadata) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        try (JsonGenerator g = JSON.createGenerator(out)) {
            g.writeStartObject();
            if (metadata != null && !metadata.isEmpty()) {
                g.writeObjectFieldStart(METADATA_KEY);
                for (Map.Entry<String, String> e : metadata.entrySet()) {
                    g.writeStringField(e.getKey(), e.getValue());
                }
                g.writeEndObject();
            }
            for (int i = 0; i < names.size(); i++) {
                Tensor t = values.get(i);
                g.writeObjectFieldStart(names.get(i));
                g.writeStringField("dtype", dtypeName(t.dtype()));
                g.writeArrayFieldStart("shape");
                for (long d : t.shape()) {
                    g.writeNumber(d);
                }
                g.writeEndArray();
                g.writeArrayFieldStart("data_offsets");
                g.writeNumber(begin[i]);
                g.writeNumber(begin[i] + t.byteSize());
                g.writeEndArray();
                g.writeEndObject();
            }
            g.writeEndObject();
        } catch (IOException e) {
            throw new UncheckedIOException("writing a header to memory", e);
        }
        int pad = (8 - out.size() % 8) % 8;
        for (int i = 0; i < pad; i++) {
            out.write(' ');
        }
        return out.toByteArray();
    }

    private static void writeFully(FileChannel ch, ByteBuffer b) throws IOException {
        while (b.hasRemaining()) {
            ch.write(b);
        }
    }

    private static void deleteQuietly(Path tmp, Throwable failure) {
        try {
            Files.deleteIfExists(tmp);
        } catch (IOException e) {
            failure.addSuppressed(e);
        }
    }

    /** Tensor bytes are copied as they lie in memory, and the format is little-endian. */
    private static void checkLittleEndian() {
        if (ByteOrder.nativeOrder() != ByteOrder.LITTLE_ENDIAN) {
            throw new UnsupportedOperationException("safetensors files need a little-endian platform, this one is "
                    + ByteOrder.nativeOrder());
        }
    }
}
