<#
.SYNOPSIS
  Install cro (CloudResourceOptimizer) on this Windows host and start it.

.DESCRIPTION
  Copies cro.exe to the install directory, makes the data directory (desired state, state,
  logs) readable by Users but writable only by Administrators and SYSTEM, writes the
  desired state if there is none (cro init, or the original tool's .env with -FromEnv),
  checks it, registers the event log source "cro", and runs cro either as the Windows
  service "cro" (the daemon: `cro reconcile --service`, the default) or as the scheduled
  task "cro" (`cro reconcile --once` every minute as SYSTEM).
  Run again to upgrade: the service is stopped, the new cro.exe put in place (a running
  worker keeps the old one, which is removed once nothing uses it) and started again. An
  existing desired.json is never replaced.

.EXAMPLE
  .\install.ps1
  The service, with the built-in targets (25 % below 16 GiB of memory, 40 % from 16 GiB).
.EXAMPLE
  .\install.ps1 -FromEnv C:\CloudResourceOptimizer\config\.env -StopLegacy
  Move over from the original tool: its settings become desired.json, its Python
  processes are stopped and its temp_*.dat disk files deleted.
.EXAMPLE
  .\install.ps1 -Mode Task
  A scheduled task instead of a service.
#>
[CmdletBinding()]
param(
    [ValidateSet('Service', 'Task')] [string] $Mode = 'Service',
    [string] $InstallDir = (Join-Path $env:ProgramFiles 'cro'),
    [string] $DataDir = (Join-Path $env:ProgramData 'cro'),
    # The original tool's config\.env: converted to desired.json (an existing one is kept
    # as desired.json.bak-<time>).
    [string] $FromEnv,
    # Stop the original tool's Python processes and delete its temp_*.dat files (in
    # -LegacyDir, default: the drive roots and the original tool's folder).
    [switch] $StopLegacy,
    [string[]] $LegacyDir = @()
)
Set-StrictMode -Version 2
$ErrorActionPreference = 'Stop'

$admin = ([Security.Principal.WindowsPrincipal][Security.Principal.WindowsIdentity]::GetCurrent()
).IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)
if (-not $admin) { throw 'install.ps1: run it in an elevated PowerShell (as Administrator).' }

$here = Split-Path -Parent $MyInvocation.MyCommand.Path
$source = Join-Path $here 'cro.exe'
if (-not (Test-Path $source)) { throw "install.ps1: $source is missing (run it from the unpacked zip)." }
$exe = Join-Path $InstallDir 'cro.exe'
$state = Join-Path $DataDir 'state'
$logs = Join-Path $DataDir 'logs'
$desired = Join-Path $DataDir 'desired.json'
$common = @('--state-dir', $state, '--desired', $desired)

function Invoke-Cro([string[]] $arguments) {
    & $exe @arguments
    if ($LASTEXITCODE -ne 0) { throw "install.ps1: cro $($arguments -join ' ') failed (exit $LASTEXITCODE)." }
}

# 1. The program. A running cro.exe (a worker) cannot be overwritten but can be renamed.
New-Item -ItemType Directory -Force -Path $InstallDir | Out-Null
$service = Get-Service -Name cro -ErrorAction SilentlyContinue
if ($service -and $service.Status -ne 'Stopped') { Stop-Service -Name cro }
if (Test-Path $exe) {
    Rename-Item -Path $exe -NewName ("cro.exe.old-{0:yyyyMMddHHmmss}" -f (Get-Date))
}
Copy-Item -Path $source -Destination $exe
Get-ChildItem -Path $InstallDir -Filter 'cro.exe.old-*' |
    ForEach-Object { Remove-Item $_.FullName -ErrorAction SilentlyContinue }
foreach ($f in 'README.txt', 'uninstall.ps1', 'desired.example.json') {
    if (Test-Path (Join-Path $here $f)) { Copy-Item (Join-Path $here $f) $InstallDir -Force }
}

# cro on the machine's PATH (cro status, in any new console).
$path = [Environment]::GetEnvironmentVariable('Path', 'Machine')
if (($path -split ';') -notcontains $InstallDir) {
    [Environment]::SetEnvironmentVariable('Path', ($path.TrimEnd(';') + ';' + $InstallDir), 'Machine')
}

# 2. The data directory: cro acts as SYSTEM on what is there, so only Administrators and
#    SYSTEM may write it; Users may read (cro status). Inheritance from ProgramData (where
#    Users may create files) is cut.
foreach ($d in $DataDir, $state, $logs) { New-Item -ItemType Directory -Force -Path $d | Out-Null }
& icacls.exe $DataDir /inheritance:r /grant:r '*S-1-5-18:(OI)(CI)F' '*S-1-5-32-544:(OI)(CI)F' '*S-1-5-32-545:(OI)(CI)RX' | Out-Null
if ($LASTEXITCODE -ne 0) { throw "install.ps1: icacls could not set the permissions of $DataDir." }

# 3. The desired state: the original tool's settings, or cro's defaults; never replaced.
if ($FromEnv) {
    $force = @(); if (Test-Path $desired) { $force = @('--force') }
    Invoke-Cro ($common + @('init') + $force + @('--from-env', $FromEnv))
} elseif (-not (Test-Path $desired)) {
    Invoke-Cro ($common + @('init'))
}
Invoke-Cro ($common + @('validate'))

# 4. The original tool, when moving over: its processes, then its disk files.
if ($StopLegacy) {
    $scripts = 'dynamic_redundancy\.py|cpu_stresser\.py|memory_stresser\.py|disk_stresser\.py'
    Get-CimInstance Win32_Process -Filter "Name LIKE 'python%'" |
        Where-Object { $_.CommandLine -match $scripts } |
        ForEach-Object {
            Write-Host "stopping the original tool's process $($_.ProcessId): $($_.CommandLine)"
            Stop-Process -Id $_.ProcessId -Force -ErrorAction SilentlyContinue
        }
    $dirs = @($LegacyDir)
    if ($dirs.Count -eq 0) {
        $dirs = @(Get-PSDrive -PSProvider FileSystem | ForEach-Object { $_.Root })
        if ($FromEnv) { $dirs += Split-Path -Parent (Split-Path -Parent $FromEnv) }
    }
    $legacy = @()
    foreach ($d in $dirs) { if (Test-Path $d) { $legacy += @('--legacy-dir', $d) } }
    if ($legacy.Count -gt 0) { Invoke-Cro ($common + @('recover', '--legacy') + $legacy) }
}

# 5. The event log source (its text shown through .NET's message file).
if (-not [Diagnostics.EventLog]::SourceExists('cro')) {
    New-EventLog -LogName Application -Source cro
}

# 6. How cro runs: the service (the daemon) or a scheduled task (a pass a minute).
$argsLine = "--state-dir `"$state`" --desired `"$desired`" --log-dir `"$logs`""
if ($Mode -eq 'Service') {
    if (Get-ScheduledTask -TaskName cro -ErrorAction SilentlyContinue) {
        Unregister-ScheduledTask -TaskName cro -Confirm:$false
    }
    $bin = "`"$exe`" $argsLine reconcile --service"
    if (Get-Service -Name cro -ErrorAction SilentlyContinue) {
        # The command line in the registry, as sc.exe config would write it (passing a
        # quoted path through PowerShell to sc.exe mangles the quotes before PS 7.3).
        Set-ItemProperty -Path 'HKLM:\SYSTEM\CurrentControlSet\Services\cro' -Name ImagePath -Value $bin
        Set-Service -Name cro -StartupType Automatic
    } else {
        New-Service -Name cro -BinaryPathName $bin -DisplayName 'cro (CloudResourceOptimizer)' `
            -Description 'Keeps CPU, memory and disk utilization at the floor set in desired.json, in the gap real work leaves.' `
            -StartupType Automatic | Out-Null
    }
    # Restart after a crash (not after a clean stop: exit 78, an invalid desired state,
    # waits for a fixed file and `Start-Service cro`).
    & sc.exe failure cro reset= 86400 actions= restart/60000/restart/60000//0 | Out-Null
    Start-Service -Name cro
    Write-Host "cro runs as the service 'cro' (Get-Service cro); logs in $logs and the Application event log."
} else {
    if (Get-Service -Name cro -ErrorAction SilentlyContinue) {
        Stop-Service -Name cro -ErrorAction SilentlyContinue
        & sc.exe delete cro | Out-Null
    }
    $action = New-ScheduledTaskAction -Execute $exe -Argument "$argsLine reconcile --once"
    $trigger = New-ScheduledTaskTrigger -Once -At (Get-Date) -RepetitionInterval (New-TimeSpan -Minutes 1) `
        -RepetitionDuration (New-TimeSpan -Days 3650)
    $startup = New-ScheduledTaskTrigger -AtStartup
    $principal = New-ScheduledTaskPrincipal -UserId 'SYSTEM' -LogonType ServiceAccount -RunLevel Highest
    $settings = New-ScheduledTaskSettingsSet -MultipleInstances IgnoreNew `
        -ExecutionTimeLimit (New-TimeSpan -Minutes 10) -AllowStartIfOnBatteries -DontStopIfGoingOnBatteries
    Register-ScheduledTask -TaskName cro -Action $action -Trigger @($trigger, $startup) `
        -Principal $principal -Settings $settings -Force | Out-Null
    Start-ScheduledTask -TaskName cro
    Write-Host "cro runs a pass every minute as the scheduled task 'cro'; logs in $logs."
}
Write-Host "desired state: $desired (edit it; the service sees the change at once)"
Write-Host "status:        cro status    (a new console; uninstall: & '$InstallDir\uninstall.ps1')"
