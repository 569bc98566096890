package rankbench;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Set;
import org.apache.lucene.index.BinaryDocValues;
import org.apache.lucene.index.IndexReader;
import org.apache.lucene.index.MultiDocValues;
import org.apache.lucene.index.MultiTerms;
import org.apache.lucene.index.NumericDocValues;
import org.apache.lucene.index.PostingsEnum;
import org.apache.lucene.index.StoredFields;
import org.apache.lucene.index.Terms;
import org.apache.lucene.index.TermsEnum;
import org.apache.lucene.search.DocIdSetIterator;
import org.apache.lucene.util.BytesRef;

/**
 * Writes a Lucene index's postings, norms and document ids as flat little-endian files for
 * rankbench's numpy BM25 engine (retrievers/lucene_exact.py). Reading postings through the Python
 * bridge costs a crossing per posting; here one call moves a chunk of terms.
 *
 * <p>Per field: {@code docs} (int32 doc numbers, term-major, doc order within a term), {@code tf}
 * (int32 frequencies), {@code dfs} (int32 postings per term), {@code terms} (UTF-8 bytes of the
 * terms in Lucene's order) and {@code term_lens} (int32 byte length per term).
 */
public final class PostingsExport implements AutoCloseable {
  private static final int BUFFER = 1 << 20;

  private final TermsEnum terms;
  private final Out docs, tf, dfs, termBytes, termLens;
  private BytesRef current;
  private PostingsEnum postings;
  private long written;

  public PostingsExport(IndexReader reader, String field, String dir) throws IOException {
    Terms fieldTerms = MultiTerms.getTerms(reader, field);
    terms = fieldTerms == null ? TermsEnum.EMPTY : fieldTerms.iterator();
    docs = new Out(dir, "docs");
    tf = new Out(dir, "tf");
    dfs = new Out(dir, "dfs");
    termBytes = new Out(dir, "terms");
    termLens = new Out(dir, "term_lens");
    current = terms.next();
  }

  /** Writes whole terms until at least {@code postingsWanted} postings are out; false at the end. */
  public boolean step(long postingsWanted) throws IOException {
    long target = written + postingsWanted;
    while (current != null && written < target) {
      termLens.putInt(current.length);
      termBytes.put(current.bytes, current.offset, current.length);
      postings = terms.postings(postings, PostingsEnum.FREQS);
      int count = 0;
      for (int doc = postings.nextDoc(); doc != DocIdSetIterator.NO_MORE_DOCS; doc = postings.nextDoc()) {
        docs.putInt(doc);
        tf.putInt(postings.freq());
        count++;
      }
      dfs.putInt(count);
      written += count;
      current = terms.next();
    }
    return current != null;
  }

  public long written() {
    return written;
  }

  @Override
  public void close() throws IOException {
    for (Out out : new Out[] {docs, tf, dfs, termBytes, termLens}) {
      out.close();
    }
  }

  /** The norm byte Lucene stored for each of the documents {@code from..to-1} (0 where none). */
  public static void writeNorms(IndexReader reader, String field, int from, int to, String path)
      throws IOException {
    NumericDocValues norms = MultiDocValues.getNormValues(reader, field);
    try (Out out = new Out(path)) {
      for (int doc = from; doc < to; doc++) {
        out.put((byte) (norms != null && norms.advanceExact(doc) ? norms.longValue() : 0));
      }
    }
  }

  /**
   * The "id" of documents {@code from..to-1}: int32 byte lengths, then the UTF-8 bytes. Read from
   * the id's doc values, which Anserini writes for tie-breaking (no stored-field decompression),
   * or from the stored field where an index has none.
   */
  public static void writeDocids(IndexReader reader, int from, int to, String lensPath, String bytesPath)
      throws IOException {
    BinaryDocValues values = MultiDocValues.getBinaryValues(reader, "id");
    StoredFields stored = values == null ? reader.storedFields() : null;
    Set<String> onlyId = Set.of("id");
    try (Out lens = new Out(lensPath); Out bytes = new Out(bytesPath)) {
      for (int doc = from; doc < to; doc++) {
        if (values != null && values.advanceExact(doc)) {
          BytesRef id = values.binaryValue();
          lens.putInt(id.length);
          bytes.put(id.bytes, id.offset, id.length);
        } else {
          String id = stored == null ? null : stored.document(doc, onlyId).get("id");
          byte[] utf8 = (id == null ? "" : id).getBytes(StandardCharsets.UTF_8);
          lens.putInt(utf8.length);
          bytes.put(utf8, 0, utf8.length);
        }
      }
    }
  }

  /** A buffered little-endian file that appends. */
  private static final class Out implements AutoCloseable {
    private final FileChannel channel;
    private final ByteBuffer buffer = ByteBuffer.allocate(BUFFER).order(ByteOrder.LITTLE_ENDIAN);

    Out(String dir, String name) throws IOException {
      this(Path.of(dir, name).toString());
    }

    Out(String path) throws IOException {
      channel =
          FileChannel.open(
              Path.of(path),
              StandardOpenOption.CREATE,
              StandardOpenOption.WRITE,
              StandardOpenOption.APPEND);
    }

    void putInt(int value) throws IOException {
      if (buffer.remaining() < 4) flush();
      buffer.putInt(value);
    }

    void put(byte value) throws IOException {
      if (!buffer.hasRemaining()) flush();
      buffer.put(value);
    }

    void put(byte[] bytes, int offset, int length) throws IOException {
      while (length > 0) {
        if (!buffer.hasRemaining()) flush();
        int n = Math.min(length, buffer.remaining());
        buffer.put(bytes, offset, n);
        offset += n;
        length -= n;
      }
    }

    private void flush() throws IOException {
      buffer.flip();
      while (buffer.hasRemaining()) channel.write(buffer);
      buffer.clear();
    }

    @Override
    public void close() throws IOException {
      flush();
      channel.close();
    }
  }
}
