using System.Buffers;
using System.CommandLine;
using System.Text;
using System.Text.Unicode;

namespace GptJx.Cli;

/// <summary>
/// --text-file: the file's text exactly as written, as Python's open(..., encoding="utf-8") reads
/// it. A leading byte-order mark stays (U+FEFF, which tokenizes like any other character), and
/// bytes that are not UTF-8 are an error naming their offset unless --invalid-utf8 replace.
/// </summary>
internal static class TextFile
{
    public static Option<string> InvalidUtf8Option() => new("--invalid-utf8")
    {
        Description = "Bytes of --text-file that are not UTF-8: error (default), or replace them with U+FFFD",
        DefaultValueFactory = _ => "error",
    };

    public static string Read(FileInfo file, string invalidUtf8)
    {
        bool replace = invalidUtf8 switch
        {
            "error" => false,
            "replace" => true,
            _ => throw new UsageException($"--invalid-utf8 '{invalidUtf8}' is not one of error, replace"),
        };
        if (!file.Exists) throw new UsageException($"--text-file: '{file.FullName}' does not exist");
        if (RegularFile.Problem(file.FullName) is { } problem) throw new UsageException($"--text-file: '{file.FullName}' {problem}");

        byte[] bytes = File.ReadAllBytes(file.FullName);
        if (replace) return Encoding.UTF8.GetString(bytes);   // keeps a BOM, unlike File.ReadAllText
        var chars = new char[bytes.Length];
        if (Utf8.ToUtf16(bytes, chars, out int read, out int written, replaceInvalidSequences: false) == OperationStatus.Done)
            return new string(chars, 0, written);
        throw new InvalidDataException(
            $"--text-file '{file.FullName}': byte 0x{bytes[read]:X2} at offset {read} is not valid UTF-8 (--invalid-utf8 replace reads it as U+FFFD)");
    }
}
