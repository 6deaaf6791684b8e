"""User agents of people in real browsers, for the false-positive tests of the bot patterns.

Built from the shapes browsers send today (desktop and mobile Chrome, Firefox, Safari, Edge,
Opera, Samsung Internet, in-app browsers, TVs and consoles) over their recent versions and a
spread of real device models, so a pattern that catches a browser token, a device model or a
version number is found. Each template is one that browsers actually send; none is invented.
"""

from __future__ import annotations

from itertools import product

WEBKIT = "AppleWebKit/537.36 (KHTML, like Gecko)"
SAFARI_KIT = "AppleWebKit/605.1.15 (KHTML, like Gecko)"
ANDROID_MODELS = (
    "K",
    "SM-S918B",
    "SM-A546B",
    "SM-G991U",
    "Pixel 8",
    "Pixel 7a",
    "M2101K6G",
    "2201117TY",
    "Redmi Note 12",
    "CPH2451",
    "V2201",
    "RMX3630",
    "moto g power (2022)",
    "motorola edge 40",
    "Nokia G21",
    "KFTRWI",
    "ANE-LX1",
    "TECNO KI5q",
    "Infinix X6816",
    "itel S665L",
    "CUBOT X30",
    "ONEPLUS A6013",
    "LM-Q730",
    "SM-T220",
)
DESKTOP_PLATFORMS = (
    "Windows NT 10.0; Win64; x64",
    "Windows NT 10.0; WOW64",
    "Windows NT 6.1; Win64; x64",
    "Macintosh; Intel Mac OS X 10_15_7",
    "X11; Linux x86_64",
    "X11; CrOS x86_64 14541.0.0",
)
IOS_VERSIONS = ("15_8", "16_7_8", "17_4_1", "17_5", "18_0", "18_1_1")
CHROME_VERSIONS = range(110, 132, 3)
FIREFOX_VERSIONS = range(115, 134, 3)


def browser_user_agents() -> list[str]:
    """About 700 distinct user agents; deterministic, so a failure names the same string every run."""
    agents: list[str] = []
    for platform, version in product(DESKTOP_PLATFORMS, CHROME_VERSIONS):
        chrome = f"Mozilla/5.0 ({platform}) {WEBKIT} Chrome/{version}.0.0.0 Safari/537.36"
        agents += [chrome, f"{chrome} Edg/{version}.0.0.0", f"{chrome} OPR/{version - 16}.0.0.0"]
        agents.append(f"Mozilla/5.0 ({platform}) {WEBKIT} Chrome/{version}.0.0.0 YaBrowser/24.4.0.0 Safari/537.36")
        agents.append(f"Mozilla/5.0 ({platform}) {WEBKIT} Chrome/{version}.0.0.0 Safari/537.36 Vivaldi/6.7.3329.35")
    for platform, version in product(
        (
            "Windows NT 10.0; Win64; x64",
            "X11; Linux x86_64",
            "X11; Ubuntu; Linux x86_64",
            "Macintosh; Intel Mac OS X 10.15",
        ),
        FIREFOX_VERSIONS,
    ):
        agents.append(f"Mozilla/5.0 ({platform}; rv:{version}.0) Gecko/20100101 Firefox/{version}.0")
    for model, version in product(ANDROID_MODELS, CHROME_VERSIONS):
        android = 14 - version % 4
        agents.append(
            f"Mozilla/5.0 (Linux; Android {android}; {model}) {WEBKIT} Chrome/{version}.0.0.0 Mobile Safari/537.36"
        )
    for model, version in product(ANDROID_MODELS, (117, 125)):
        webview = (
            f"Mozilla/5.0 (Linux; Android 13; {model} Build/TP1A.220624.014; wv) "
            f"{WEBKIT} Version/4.0 Chrome/{version}.0.6367.54 Mobile Safari/537.36"
        )
        agents += [
            webview,
            f"{webview} [FB_IAB/FB4A;FBAV/454.0.0.44.108;]",
            f"{webview} Instagram 327.0.0.42.89 Android (34/14; 420dpi; 1080x2205; "
            f"Google/google; {model}; shiba; shiba; en_US; 587654321)",
            f"{webview} Line/14.5.1/IAB",
            f"{webview} XWEB/1160117 MMWEBSDK/20240301 MMWEBID/6171 MicroMessenger/8.0.48.2580(0x28003036) "
            "WeChat/arm64 Weixin NetType/WIFI Language/zh_CN ABI/arm64",
            f"{webview} NAVER(inapp; search; 2000; 12.3.5)",
            f"{webview} KAKAOTALK 10.5.6",
            f"Mozilla/5.0 (Linux; Android 14; {model}) {WEBKIT} SamsungBrowser/25.0 "
            f"Chrome/{version}.0.0.0 Mobile Safari/537.36",
            f"Mozilla/5.0 (Linux; Android 14; {model}) {WEBKIT} Chrome/{version}.0.0.0 Mobile Safari/537.36 "
            f"EdgA/{version}.0.0.0",
            f"Mozilla/5.0 (Android 14; Mobile; rv:{version}.0) Gecko/{version}.0 Firefox/{version}.0",
            f"Mozilla/5.0 (Linux; Android 14; {model}) {WEBKIT} Chrome/{version}.0.0.0 Mobile Safari/537.36 "
            "OPR/80.4.4244.7786",
            f"Mozilla/5.0 (Linux; U; Android 13; en-US; {model} Build/TP1A.220624.014) {WEBKIT} "
            f"Version/4.0 Chrome/{version}.0.0.0 UCBrowser/13.4.0.1306 Mobile Safari/537.36",
            f"Mozilla/5.0 (Linux; Android 14; {model}) {WEBKIT} Version/4.0 Chrome/{version}.0.0.0 "
            "Mobile DuckDuckGo/5 Safari/537.36",
        ]
    for ios in IOS_VERSIONS:
        major = ios.split("_")[0]
        safari = f"Version/{ios.replace('_', '.')} Mobile/15E148 Safari/604.1"
        for device in (f"iPhone; CPU iPhone OS {ios} like Mac OS X", f"iPad; CPU OS {ios} like Mac OS X"):
            agents += [
                f"Mozilla/5.0 ({device}) {SAFARI_KIT} {safari}",
                f"Mozilla/5.0 ({device}) {SAFARI_KIT} CriOS/124.0.6367.88 Mobile/15E148 Safari/604.1",
                f"Mozilla/5.0 ({device}) {SAFARI_KIT} FxiOS/126.0 Mobile/15E148 Safari/605.1.15",
                f"Mozilla/5.0 ({device}) {SAFARI_KIT} EdgiOS/124.0.2478.89 Mobile/15E148 Safari/605.1.15",
                f"Mozilla/5.0 ({device}) {SAFARI_KIT} GSA/313.0.624487495 Mobile/15E148 Safari/604.1",
                f"Mozilla/5.0 ({device}) {SAFARI_KIT} Mobile/15E148",
                f"Mozilla/5.0 ({device}) {SAFARI_KIT} Mobile/15E148 Instagram 329.0.3.29.99 (iPhone14,5; iOS {ios}; "
                "en_US; en; scale=3.00; 1170x2532; 599139364)",
                f"Mozilla/5.0 ({device}) {SAFARI_KIT} Mobile/15E148 [FBAN/FBIOS;FBAV/452.0.0.39.110;"
                f"FBBV/574193014;FBDV/iPhone15,2;FBMD/iPhone;FBSN/iOS;FBSV/{major};FBSS/3;FBID/phone;FBLC/en_US;"
                "FBOP/5;FBRV/575669420]",
                f"Mozilla/5.0 ({device}) {SAFARI_KIT} Mobile/15E148 [LinkedInApp]/9.29.8424",
                f"Mozilla/5.0 ({device}) {SAFARI_KIT} Mobile/15E148 Snapchat/13.2.0.37 "
                "(like Safari/8617.2.4.10.8, panda)",
                f"Mozilla/5.0 ({device}) {SAFARI_KIT} Mobile/15E148 musical_ly_34.1.0 JsSdk/2.0 NetType/WIFI "
                "Channel/App Store ByteLocale/en Region/US ByteFullLocale/en WKWebView/1 BytedanceWebview/d8a21c6",
                f"Mozilla/5.0 ({device}) {SAFARI_KIT} Mobile/15E148 Twitter for iPhone/10.41",
                f"Mozilla/5.0 ({device}) {SAFARI_KIT} Mobile/15E148 [Pinterest/iOS]",
                f"Mozilla/5.0 ({device}) {SAFARI_KIT} Mobile/15E148 Safari Line/14.5.0",
                f"Mozilla/5.0 ({device}) {SAFARI_KIT} Mobile/15E148 MicroMessenger/8.0.49(0x18003133) "
                "NetType/WIFI Language/zh_CN",
                f"Mozilla/5.0 ({device}) {SAFARI_KIT} Version/{major}.0 DuckDuckGo/7 Mobile/15E148 Safari/605.1.15",
            ]
        agents.append(
            f"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) {SAFARI_KIT} "
            f"Version/{ios.replace('_', '.')} Safari/605.1.15"
        )
    agents += [
        f"Mozilla/5.0 (Windows NT 10.0; Win64; x64; Xbox; Xbox Series X) {WEBKIT} "
        "Chrome/120.0.0.0 Safari/537.36 Edge/20.02",
        f"Mozilla/5.0 (PlayStation; PlayStation 5/8.20) {SAFARI_KIT} Version/15.4 Safari/605.1.15",
        f"Mozilla/5.0 (SMART-TV; Linux; Tizen 6.0) {WEBKIT} SamsungBrowser/4.0 Chrome/76.0.3809.146 TV Safari/537.36",
        f"Mozilla/5.0 (Web0S; Linux/SmartTV) {WEBKIT} Chrome/87.0.4280.88 Safari/537.36 WebAppManager",
        f"Mozilla/5.0 (X11; Linux armv7l) {WEBKIT} Chrome/114.0.0.0 Safari/537.36 CrKey/1.56.500000",
        f"Mozilla/5.0 (X11; Linux x86_64; Quest 3) {WEBKIT} OculusBrowser/33.0.0.x.x "
        "SamsungBrowser/4.0 Chrome/124.0.0.0 VR Safari/537.36",
        f"Mozilla/5.0 (Linux; Android 9; KFTRWI) {WEBKIT} Silk/124.3.1 like Chrome/124.0.6367.179 Safari/537.36",
        f"Mozilla/5.0 (Linux; Android 12; HarmonyOS; ANE-LX1; HMSCore 6.13.0.302) {WEBKIT} "
        "Chrome/114.0.5735.196 HuaweiBrowser/14.0.6.300 Mobile Safari/537.36",
        f"Mozilla/5.0 (Linux; U; Android 13; en-us; 2201117TY Build/TKQ1.221114.001) {WEBKIT} "
        "Version/4.0 Chrome/112.0.5615.136 Mobile Safari/537.36 XiaoMi/MiuiBrowser/14.8.1-gn",
        f"Mozilla/5.0 (Windows NT 10.0; Win64; x64) {WEBKIT} Chrome/124.0.0.0 Whale/3.26.244.21 Safari/537.36",
        f"Mozilla/5.0 (Linux; Android 14; SM-S918N) {WEBKIT} SamsungBrowser/25.0 "
        "Chrome/121.0.0.0 Mobile Safari/537.36 NAVER(inapp; search; 2000; 12.3.5; S23)",
    ]
    return sorted(set(agents))
