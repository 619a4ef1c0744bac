#!/usr/bin/env pwsh
# Build verbs for GptJx.Cuda. Needs the .NET 10 SDK; PowerShell 7 via
# `dotnet tool install --global PowerShell`. The README's plain dotnet commands do the same.
param(
    [ValidateSet('build', 'test', 'run', 'bench', 'ptx', 'check-ptx', 'bundle')]
    [string]$Verb = 'build',
    [Parameter(ValueFromRemainingArguments = $true)][string[]]$Rest
)
$ErrorActionPreference = 'Stop'
Set-Location $PSScriptRoot
function Invoke([string]$exe, [string[]]$arguments) {
    & $exe @arguments
    if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }
}
switch ($Verb) {
    'build'     { Invoke dotnet @('build', 'GptJx.Cuda.sln', '-c', 'Release') }
    'test'      { Invoke dotnet @('test', 'GptJx.Cuda.sln') }
    'run'       { Invoke dotnet (@('run', '-c', 'Release', '--project', 'src/GptJx.Cli', '--') + $Rest) }
    'bench'     { Invoke dotnet (@('run', '-c', 'Release', '--project', 'src/GptJx.Cli', '--', 'bench') + $Rest) }
    'ptx'       { Invoke bash @('tools/build-ptx.sh') }
    'check-ptx' { Invoke bash @('tools/check-ptx.sh') }
    'bundle'    { Invoke bash (@('tools/device/make-bundle.sh') + $Rest) }
}
