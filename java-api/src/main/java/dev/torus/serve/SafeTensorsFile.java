package dev.torus.serve;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.JsonToken;
import dev.torus.DType;
import dev.torus.Device;
import dev.torus.memory.Allocator;
import dev.torus.memory.HostBuffer;
import dev.torus.tensor.Tensor;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * An open safetensors file (see {@link SafeTensors}): its header, checked in full when
 * opened, and the means to read its tensors.
 *
 * <p>Ownership: the object owns an open read-only file channel, and nothing else; the
 * tensors' bytes stay in the file until {@link #tensor} reads them, with positional reads,
 * straight into a new tensor that the caller owns. {@link #close()} closes the channel; every
 * method then throws {@link IllegalStateException}. Because the channel stays open, replacing
 * the file (as {@link SafeTensors#write} does, by rename) does not disturb an open reader.
 *
 * <p>Thread-safety: once open, {@link #tensor} and the accessors may be called from several
 * threads at once; {@link #close()} must not race them.
 *
 * <p>Opening refuses, with a {@link ModelFileException} that names the file and the problem:
 * a file shorter than 8 bytes; a header length over {@link SafeTensors#MAX_HEADER_BYTES} or
 * past the end of the file; a header that is not UTF-8, not JSON, or not a JSON object; a
 * tensor entry that is not an object of {@code dtype} (string), {@code shape} (array of
 * non-negative integers) and {@code data_offsets} (two non-negative integers), or has other
 * fields; a dtype Torus does not have; an element count or byte size that overflows;
 * {@code data_offsets} with begin after end, whose length is not numel × element size, that
 * overlap another tensor's or leave a gap; data that reaches past the end of the file
 * (a truncated file) or bytes after the last tensor; a {@code __metadata__} that is not an
 * object of strings; a name given twice.
 */
public final class SafeTensorsFile implements AutoCloseable {
    /** How many names a "not found" message lists before it abbreviates. */
    private static final int LISTED_NAMES = 32;
    private static final long CHUNK = 1L << 30;

    private final Path file;
    private final FileChannel channel;
    private final long dataStart;
    private final Map<String, Entry> entries;
    private final List<String> names;
    private final Map<String, String> metadata;
    private volatile boolean closed;

    /** One tensor's header entry; {@code begin} and {@code end} are relative to the data. */
    private record Entry(String name, DType dtype, long[] shape, long begin, long end) {
    }

    private SafeTensorsFile(Path file, FileChannel channel, long dataStart, Map<String, Entry> entries,
                            Map<String, String> metadata) {
        this.file = file;
        this.channel = channel;
        this.dataStart = dataStart;
        this.entries = entries;
        this.names = List.copyOf(entries.keySet());
        this.metadata = Collections.unmodifiableMap(metadata);
    }

    static SafeTensorsFile open(Path file) {
        if (!Files.exists(file)) {
            throw new ModelFileException(file, "no such file");
        }
        if (!Files.isRegularFile(file)) {
            throw new ModelFileException(file, "not a regular file");
        }
        FileChannel ch;
        try {
            ch = FileChannel.open(file, StandardOpenOption.READ);
        } catch (NoSuchFileException e) {
            throw new ModelFileException(file, "no such file", e);
        } catch (IOException e) {
            throw new ModelFileException(file, "cannot open: " + e, e);
        }
        try {
            long size = ch.size();
            if (size < 8) {
                throw new ModelFileException(file, "the file is " + size
                        + " bytes, shorter than the 8-byte header length that starts a safetensors file");
            }
            ByteBuffer prefix = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
            readFully(file, ch, prefix, 0);
            long n = prefix.flip().getLong();
            if (n < 0 || n > SafeTensors.MAX_HEADER_BYTES) {
                throw new ModelFileException(file, "header length " + Long.toUnsignedString(n)
                        + " is over the limit of " + SafeTensors.MAX_HEADER_BYTES + " bytes");
            }
            if (n > size - 8) {
                throw new ModelFileException(file, "header length " + n + " runs past the end of the file ("
                        + size + " bytes, so at most " + (size - 8) + " header bytes)");
            }
            ByteBuffer header = ByteBuffer.allocate((int) n);
            readFully(file, ch, header, 8);
            Header h = new HeaderParser(file, header.array()).parse();
            checkLayout(file, h.entries, size - 8 - n, size, n);
            return new SafeTensorsFile(file, ch, 8 + n, h.entries, h.metadata);
        } catch (IOException e) {
            closeQuietly(ch, e);
            throw new ModelFileException(file, "cannot read: " + e, e);
        } catch (RuntimeException | Error e) {
            closeQuietly(ch, e);
            throw e;
        }
    }

    /** The file's path, as given to {@link SafeTensors#read}. */
    public Path path() {
        return file;
    }

    /** The tensor names, in the header's order (the order they were written in); unmodifiable. */
    public List<String> names() {
        ensureOpen();
        return names;
    }

    /** True when the file holds a tensor called {@code name}. */
    public boolean contains(String name) {
        ensureOpen();
        return entries.containsKey(name);
    }

    /** The {@code __metadata__} strings, in the header's order; empty when there are none. Unmodifiable. */
    public Map<String, String> metadata() {
        ensureOpen();
        return metadata;
    }

    /**
     * The dtype of tensor {@code name}.
     *
     * @throws ModelFileException when the file has no such tensor; the message lists those it has
     */
    public DType dtype(String name) {
        return entry(name).dtype;
    }

    /**
     * A copy of the shape of tensor {@code name} ({@code []} for a scalar).
     *
     * @throws ModelFileException when the file has no such tensor; the message lists those it has
     */
    public long[] shape(String name) {
        return entry(name).shape.clone();
    }

    /**
     * Reads tensor {@code name} into a new CPU tensor from {@code allocator}, with the file's
     * dtype and shape. The caller owns the tensor and closes it.
     *
     * @throws IllegalArgumentException when {@code allocator} is null
     * @throws ModelFileException       when the file has no such tensor (the message lists those it
     *                                  has), or reading it fails
     */
    public Tensor tensor(String name, Allocator allocator) {
        Entry e = entry(name);
        if (allocator == null) {
            throw new IllegalArgumentException("allocator must not be null");
        }
        Tensor t = Tensor.empty(allocator, e.dtype, Device.cpu(), e.shape);
        try {
            long bytes = e.end - e.begin;
            HostBuffer hb = bytes == 0 ? null : (HostBuffer) t.buffer();
            for (long off = 0; off < bytes; off += CHUNK) {
                ByteBuffer view = hb.view(off, Math.min(CHUNK, bytes - off));
                readFully(file, channel, view, dataStart + e.begin + off);
            }
        } catch (IOException ex) {
            t.close();
            throw new ModelFileException(file, "cannot read tensor '" + name + "': " + ex, ex);
        } catch (RuntimeException | Error ex) {
            t.close();
            throw ex;
        }
        return t;
    }

    /**
     * As {@link #tensor(String, Allocator)}, but first checks that the tensor has dtype
     * {@code expected} and shape {@code expectedShape}.
     *
     * @throws IllegalArgumentException when an argument is null
     * @throws ModelFileException       when the file has no such tensor, or it has another dtype or
     *                                  shape (the message names the tensor, the expected and the actual)
     */
    public Tensor tensor(String name, DType expected, long[] expectedShape, Allocator allocator) {
        if (expected == null) {
            throw new IllegalArgumentException("expected must not be null");
        }
        if (expectedShape == null) {
            throw new IllegalArgumentException("expectedShape must not be null");
        }
        Entry e = entry(name);
        if (e.dtype != expected || !Arrays.equals(e.shape, expectedShape)) {
            throw new ModelFileException(file, "tensor '" + name + "': expected "
                    + SafeTensors.describe(expected, expectedShape) + ", the file has "
                    + SafeTensors.describe(e.dtype, e.shape));
        }
        return tensor(name, allocator);
    }

    public boolean isClosed() {
        return closed;
    }

    /** Closes the file; idempotent. */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        try {
            channel.close();
        } catch (IOException e) {
            throw new ModelFileException(file, "cannot close: " + e, e);
        }
    }

    @Override
    public String toString() {
        return "SafeTensorsFile[" + file + ", " + entries.size() + " tensors" + (closed ? ", closed" : "") + "]";
    }

    private Entry entry(String name) {
        ensureOpen();
        if (name == null) {
            throw new IllegalArgumentException("name must not be null");
        }
        Entry e = entries.get(name);
        if (e == null) {
            throw new ModelFileException(file, "no tensor '" + name + "'; the file has " + listNames());
        }
        return e;
    }

    private String listNames() {
        if (names.isEmpty()) {
            return "no tensors";
        }
        if (names.size() <= LISTED_NAMES) {
            return names.size() + ": " + names;
        }
        return names.size() + ": " + names.subList(0, LISTED_NAMES).toString().replaceFirst("]$", ", ...]");
    }

    private void ensureOpen() {
        if (closed) {
            throw new IllegalStateException(this + " is closed");
        }
    }

    private static void readFully(Path file, FileChannel ch, ByteBuffer b, long position) throws IOException {
        long pos = position;
        while (b.hasRemaining()) {
            int r = ch.read(b, pos);
            if (r < 0) {
                throw new ModelFileException(file, "the file ended at byte " + pos + " while " + b.remaining()
                        + " more bytes were expected; was it truncated while open?");
            }
            pos += r;
        }
    }

    private static void closeQuietly(FileChannel ch, Throwable failure) {
        try {
            ch.close();
        } catch (IOException e) {
            failure.addSuppressed(e);
        }
    }

    /**
     * The reference reader's rules for the data: sorted by offsets, the tensors cover
     * [0, bufferBytes) exactly, each right after the previous one.
     */
    private static void checkLayout(Path file, Map<String, Entry> entries, long bufferBytes, long fileSize,
                                    long headerBytes) {
        List<Entry> sorted = new ArrayList<>(entries.values());
        sorted.sort(Comparator.comparingLong(Entry::begin).thenComparingLong(Entry::end));
        long end = 0;
        Entry previous = null;
        for (Entry e : sorted) {
            if (e.begin < end) {
                throw new ModelFileException(file, "tensors '" + previous.name + "' " + range(previous) + " and '"
                        + e.name + "' " + range(e) + " overlap");
            }
            if (e.begin > end) {
                throw new ModelFileException(file, "no tensor covers data bytes [" + end + ", " + e.begin + ")"
                        + (previous == null ? " before '" + e.name + "'"
                        : " between '" + previous.name + "' and '" + e.name + "'")
                        + "; tensors must lie back to back from offset 0");
            }
            end = e.end;
            previous = e;
        }
        if (end > bufferBytes) {
            Entry outside = null;
            for (Entry e : sorted) {
                if (e.end > bufferBytes) {
                    outside = e;
                    break;
                }
            }
            throw new ModelFileException(file, "tensor '" + outside.name + "' has data_offsets " + range(outside)
                    + ", outside the " + bufferBytes + "-byte data buffer: the file is truncated ("
                    + fileSize + " bytes; the header describes " + (8 + headerBytes + end) + ")");
        }
        if (end < bufferBytes) {
            throw new ModelFileException(file, (bufferBytes - end) + " bytes follow the last tensor's data (the header"
                    + " describes " + end + " data bytes, the file holds " + bufferBytes + ")");
        }
    }

    private static String range(Entry e) {
        return "[" + e.begin + ", " + e.end + "]";
    }

    private record Header(Map<String, Entry> entries, Map<String, String> metadata) {
    }

    /** Reads the header with Jackson's streaming parser, checking each entry as it goes. */
    private static final class HeaderParser {
        private final Path file;
        private final byte[] bytes;
        private JsonParser p;

        HeaderParser(Path file, byte[] bytes) {
            this.file = file;
            this.bytes = bytes;
        }

        Header parse() {
            String text;
            try {
                text = StandardCharsets.UTF_8.newDecoder().decode(ByteBuffer.wrap(bytes)).toString();
            } catch (CharacterCodingException e) {
                throw fail("the header is not valid UTF-8 (" + e + ")", e);
            }
            Map<String, Entry> entries = new LinkedHashMap<>();
            Map<String, String> metadata = null;
            try (JsonParser parser = SafeTensors.JSON.createParser(text)) {
                p = parser;
                JsonToken t = p.nextToken();
                if (t != JsonToken.START_OBJECT) {
                    throw fail("the header is not a JSON object: it " + (t == null ? "is empty"
                            : "starts with " + found(t)));
                }
                while ((t = p.nextToken()) == JsonToken.FIELD_NAME) {
                    String name = p.currentName();
                    p.nextToken();
                    if (name.equals(SafeTensors.METADATA_KEY)) {
                        if (metadata != null) {
                            throw fail("'" + SafeTensors.METADATA_KEY + "' appears twice");
                        }
                        metadata = metadata();
                    } else {
                        if (entries.containsKey(name)) {
                            throw fail("tensor '" + name + "' appears twice");
                        }
                        entries.put(name, entry(name));
                    }
                }
                if (t != JsonToken.END_OBJECT) {
                    throw fail("the header is not valid JSON: expected a field name or '}', got " + found(t));
                }
                t = p.nextToken();
                if (t != null) {
                    throw fail("the header has " + found(t) + " after its JSON object");
                }
            } catch (JsonProcessingException e) {
                throw fail("the header is not valid JSON: " + e.getOriginalMessage()
                        + (e.getLocation() == null ? "" : " (at character " + e.getLocation().getCharOffset() + ")"),
                        e);
            } catch (IOException e) {
                throw fail("cannot parse the header: " + e, e);
            }
            return new Header(entries, metadata == null ? new LinkedHashMap<>() : metadata);
        }

        private Map<String, String> metadata() throws IOException {
            String what = "'" + SafeTensors.METADATA_KEY + "'";
            if (p.currentToken() != JsonToken.START_OBJECT) {
                throw fail(what + " must be an object of strings, got " + found(p.currentToken()));
            }
            Map<String, String> m = new LinkedHashMap<>();
            JsonToken t;
            while ((t = p.nextToken()) == JsonToken.FIELD_NAME) {
                String key = p.currentName();
                t = p.nextToken();
                if (t != JsonToken.VALUE_STRING) {
                    throw fail(what + ": the value of '" + key + "' must be a string, got " + found(t));
                }
                if (m.put(key, p.getText()) != null) {
                    throw fail(what + ": key '" + key + "' appears twice");
                }
            }
            return m;
        }

        private Entry entry(String name) throws IOException {
            String what = "tensor '" + name + "'";
            if (p.currentToken() != JsonToken.START_OBJECT) {
                throw fail(what + ": expected an object with dtype, shape and data_offsets, got "
                        + found(p.currentToken()));
            }
            String dtypeName = null;
            long[] shape = null;
            long[] offsets = null;
            while (p.nextToken() == JsonToken.FIELD_NAME) {
                String field = p.currentName();
                JsonToken t = p.nextToken();
                switch (field) {
                    case "dtype":
                        requireOnce(what, field, dtypeName);
                        if (t != JsonToken.VALUE_STRING) {
                            throw fail(what + ": dtype must be a string, got " + found(t));
                        }
                        dtypeName = p.getText();
                        break;
                    case "shape":
                        requireOnce(what, field, shape);
                        shape = integers(what, "shape", "dimension", -1);
                        break;
                    case "data_offsets":
                        requireOnce(what, field, offsets);
                        offsets = integers(what, "data_offsets", "offset", 2);
                        break;
                    default:
                        throw fail(what + ": unexpected field '" + field + "' (expected dtype, shape, data_offsets)");
                }
            }
            for (Object[] f : new Object[][] {{"dtype", dtypeName}, {"shape", shape}, {"data_offsets", offsets}}) {
                if (f[1] == null) {
                    throw fail(what + ": the entry has no '" + f[0] + "'");
                }
            }
            DType dtype = SafeTensors.dtypeOf(dtypeName);
            if (dtype == null) {
                throw fail(what + ": dtype '" + dtypeName + "' is not supported (expected one of "
                        + "F32, F16, BF16, F64, I8, U8, I32, I64)");
            }
            long bytes;
            try {
                long numel = 1;
                for (long d : shape) {
                    numel = Math.multiplyExact(numel, d);
                }
                bytes = Math.multiplyExact(numel, (long) dtype.byteSize());
            } catch (ArithmeticException e) {
                throw fail(what + ": the byte size of " + SafeTensors.describe(dtype, shape) + " overflows");
            }
            long begin = offsets[0];
            long end = offsets[1];
            if (begin > end) {
                throw fail(what + ": data_offsets [" + begin + ", " + end + "] begin after they end ("
                        + begin + " > " + end + ")");
            }
            if (end - begin != bytes) {
                throw fail(what + ": data_offsets [" + begin + ", " + end + "] hold " + (end - begin) + " bytes, but "
                        + SafeTensors.describe(dtype, shape) + " takes " + bytes);
            }
            return new Entry(name, dtype, shape, begin, end);
        }

        /** An array of non-negative 64-bit integers, of length {@code count} (any when negative). */
        private long[] integers(String what, String field, String item, int count) throws IOException {
            String expected = count < 0 ? "an array of non-negative integers"
                    : "an array of " + count + " non-negative integers";
            if (p.currentToken() != JsonToken.START_ARRAY) {
                throw fail(what + ": " + field + " must be " + expected + ", got " + found(p.currentToken()));
            }
            List<Long> values = new ArrayList<>();
            JsonToken t;
            while ((t = p.nextToken()) != JsonToken.END_ARRAY) {
                if (t != JsonToken.VALUE_NUMBER_INT) {
                    throw fail(what + ": " + field + " must be " + expected + ", got " + found(t) + " in it");
                }
                if (p.getNumberType() == JsonParser.NumberType.BIG_INTEGER) {
                    throw fail(what + ": " + field + " has " + item + " " + p.getText() + ", too large (at most "
                            + Long.MAX_VALUE + ")");
                }
                long v = p.getLongValue();
                if (v < 0) {
                    throw fail(what + ": " + field + " has a negative " + item + ", " + v);
                }
                values.add(v);
            }
            if (count >= 0 && values.size() != count) {
                throw fail(what + ": " + field + " must be " + expected + ", got " + values.size() + " values");
            }
            long[] out = new long[values.size()];
            for (int i = 0; i < out.length; i++) {
                out[i] = values.get(i);
            }
            return out;
        }

        private void requireOnce(String what, String field, Object seen) {
            if (seen != null) {
                throw fail(what + ": field '" + field + "' appears twice");
            }
        }

        /** The token the parser is on, for messages: "an object", "null", "\"text\"", "2.5". */
        private String found(JsonToken t) throws IOException {
            if (t == null) {
                return "the end of the header";
            }
            switch (t) {
                case START_OBJECT:
                    return "an object";
                case START_ARRAY:
                    return "an array";
                case VALUE_NULL:
                    return "null";
                case VALUE_STRING: {
                    String s = p.getText();
                    return "the string \"" + (s.length() > 40 ? s.substring(0, 40) + "..." : s) + "\"";
                }
                default:
                    return p.getText();
            }
        }

        private ModelFileException fail(String problem) {
            return new ModelFileException(file, problem);
        }

        private ModelFileException fail(String problem, Throwable cause) {
            return new ModelFileException(file, problem, cause);
        }
    }
}
